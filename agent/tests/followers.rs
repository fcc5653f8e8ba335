//! Many concurrent followers, a stalled reader and cancelled clients, over the unix socket.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use sightline_proto::flow::LostEventSource;
use sightline_proto::observer::{GetFlowsRequest, GetFlowsResponse, get_flows_response::ResponseTypes};
use support::{flow, start};
use tonic::Streaming;

const FLOWS: u64 = 3_000;

/// Reads until every written flow is accounted for, as a flow or as a reported loss.
/// Returns (flows received, events reported lost).
async fn drain(mut stream: Streaming<GetFlowsResponse>) -> (u64, u64) {
    let (mut flows, mut lost, mut last_id) = (0u64, 0u64, None::<u64>);
    while flows + lost < FLOWS {
        let message = stream.message().await.unwrap().unwrap();
        match message.response_types {
            Some(ResponseTypes::Flow(f)) => {
                let id: u64 = f.uuid.trim_start_matches('f').parse().unwrap();
                assert!(last_id.is_none_or(|last| id > last), "flows arrive in order, once");
                last_id = Some(id);
                flows += 1;
            }
            Some(ResponseTypes::LostEvents(l)) => {
                assert_eq!(l.source, LostEventSource::HubbleRingBuffer as i32);
                lost += l.num_events_lost;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(flows + lost, FLOWS, "nothing is missed silently or reported twice");
    (flows, lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_followers_and_a_stalled_reader() {
    let mut agent = start(&["--event-buffer-capacity", "1023"]).await;
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(agent.observer().await);
    }
    let follow = GetFlowsRequest {
        follow: true,
        ..Default::default()
    };
    // Its own connection: unread data on an HTTP/2 connection holds the connection's
    // flow-control window, which would stall the client's other streams, not the server.
    // Small HTTP/2 windows, so the client cannot buffer the whole run on its side.
    let mut stalled = support::small_window_observer(&agent)
        .await
        .get_flows(follow.clone())
        .await
        .unwrap()
        .into_inner();
    let mut followers = Vec::new();
    for i in 0..200 {
        let stream = channels[i % 4].get_flows(follow.clone()).await.unwrap().into_inner();
        followers.push(tokio::spawn(drain(stream)));
    }
    // Every follower (and the stalled reader) is parked at the live end before we write.
    let ring = agent.sink.ring();
    tokio::time::timeout(Duration::from_secs(10), async {
        while ring.waiting_readers() < 201 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();

    // The writer never waits for readers: it publishes everything in batches.
    for batch in 0..FLOWS / 500 {
        for i in 0..500 {
            agent.publish_flow(flow(batch * 500 + i, 100));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    let mut total_lost = 0;
    for follower in followers {
        let (_, lost) = tokio::time::timeout(Duration::from_secs(60), follower)
            .await
            .unwrap()
            .unwrap();
        total_lost += lost;
    }
    // The stalled reader only held its own position: it learns what it missed.
    let first = tokio::time::timeout(Duration::from_secs(10), stalled.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.response_types.is_some());
    let mut rest_flows = u64::from(matches!(first.response_types, Some(ResponseTypes::Flow(_))));
    let mut rest_lost = match first.response_types {
        Some(ResponseTypes::LostEvents(l)) => l.num_events_lost,
        _ => 0,
    };
    while rest_flows + rest_lost < FLOWS {
        match stalled.message().await.unwrap().unwrap().response_types {
            Some(ResponseTypes::Flow(_)) => rest_flows += 1,
            Some(ResponseTypes::LostEvents(l)) => rest_lost += l.num_events_lost,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(rest_flows + rest_lost, FLOWS);
    assert!(
        rest_lost > 0,
        "a 1023-event ring cannot hold {FLOWS} flows for a reader that stopped"
    );
    eprintln!("followers lost {total_lost} events in total; stalled reader lost {rest_lost}");
}

#[tokio::test]
async fn cancelled_followers_release_their_readers() {
    let agent = start(&[]).await;
    let mut client = agent.observer().await;
    let mut streams = Vec::new();
    for _ in 0..10 {
        streams.push(
            client
                .get_flows(GetFlowsRequest {
                    follow: true,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let ring = agent.sink.ring();
    let wait_for = |n: usize| {
        let ring = ring.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(5), async {
                while ring.waiting_readers() != n {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .unwrap()
        }
    };
    wait_for(10).await;
    drop(streams);
    wait_for(0).await;
}
