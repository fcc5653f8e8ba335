//! A relay in front of agents that frame as Hubble's Go agents do, one HTTP/2 DATA
//! frame per response: the relay joins those frames before h2 sees them, and every
//! response must still arrive whole, once, and in its agent's order.

#[allow(dead_code)]
#[path = "../benches/merge/go_framed.rs"]
mod go_framed;
mod support;

use go_framed::{GoFramedAgent, hubble_sized_response};
use sightline_proto::Timestamp;
use sightline_proto::observer::GetFlowsRequest;
use support::streams::{collect_all, flow_node, nanos};

#[tokio::test]
async fn responses_sent_one_per_frame_arrive_whole_and_in_each_agents_order() {
    const FLOWS: u64 = 5_000;
    let agents = [
        GoFramedAgent::start("node-a", FLOWS, 0, None).await,
        GoFramedAgent::start("node-b", FLOWS, 1, None).await,
    ];
    let peers = agents
        .iter()
        .map(|a| format!("{}={}", a.name, a.address))
        .collect::<Vec<_>>()
        .join(",");
    let relay = support::relay(&["--peers", &peers, "--disable-client-tls"]).await;
    support::until_connected(&relay, agents.len()).await;

    let mut stream = support::get_flows(&relay, GetFlowsRequest::default()).await;
    let responses = collect_all(&mut stream).await;

    let mut next_k = [0u64; 2];
    for response in responses.iter().filter(|r| flow_node(r).is_some()) {
        // The agents stamp their k-th flow k µs after the epoch, plus their index in ns.
        let time = nanos(response);
        let (k, index) = (
            u64::try_from(time / 1_000).expect("positive"),
            usize::try_from(time % 1_000).expect("small"),
        );
        assert!(index < agents.len(), "a time no agent sent: {time}");
        assert_eq!(k, next_k[index], "{}'s flows out of order or lost", agents[index].name);
        next_k[index] += 1;
        let expected = hubble_sized_response(k, &agents[index].name, Timestamp::from_unix_nanos(time));
        assert_eq!(
            response, &expected,
            "flow {k} of {} arrived changed",
            agents[index].name
        );
    }
    assert_eq!(next_k, [FLOWS; 2], "every flow of both agents arrives");
}
