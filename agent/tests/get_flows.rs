//! GetFlows request semantics through the real gRPC stack (unix socket).
#![allow(clippy::unwrap_used)]

mod support;

use sightline_agent::event::Event;
use sightline_proto::flow::{FlowFilter, LostEvent, LostEventSource};
use sightline_proto::observer::{GetFlowsRequest, get_flows_response::ResponseTypes};
use sightline_proto::wkt::FieldMask;
use support::{at, collect, flow, start, uuids};
use tonic::Code;

fn ids(list: &[u64]) -> Vec<String> {
    list.iter().map(|i| format!("f{i}")).collect()
}

fn port_filter(port: &str) -> FlowFilter {
    FlowFilter {
        destination_port: vec![port.into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn number_returns_the_last_matching_flows_including_the_newest() {
    let mut agent = start(&[]).await;
    for i in 0..10 {
        agent.publish_flow(flow(i, 100 + i as i64));
        // Non-flow events must not count towards `number` (Hubble counts them).
        agent.publish(Event::Agent {
            time: at(100),
            event: Box::default(),
        });
    }
    let mut client = agent.observer().await;
    let got = collect(
        &mut client,
        GetFlowsRequest {
            number: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(uuids(&got), ids(&[7, 8, 9]));
    let first = collect(
        &mut client,
        GetFlowsRequest {
            number: 2,
            first: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(uuids(&first), ids(&[0, 1]));
    let all = collect(&mut client, GetFlowsRequest::default()).await;
    assert_eq!(uuids(&all).len(), 10, "number = 0 reads the whole ring");
}

#[tokio::test]
async fn number_counts_only_flows_that_pass_the_filters() {
    let mut agent = start(&[]).await;
    for i in 0..40 {
        agent.publish_flow(flow(i, 100));
    }
    let mut client = agent.observer().await;
    // synthetic flows use destination port 80 for i % 4 == 0
    let request = GetFlowsRequest {
        number: 3,
        whitelist: vec![port_filter("80")],
        ..Default::default()
    };
    assert_eq!(uuids(&collect(&mut client, request).await), ids(&[28, 32, 36]));
    let request = GetFlowsRequest {
        number: 2,
        blacklist: vec![port_filter("80")],
        ..Default::default()
    };
    assert_eq!(uuids(&collect(&mut client, request).await), ids(&[38, 39]));
}

#[tokio::test]
async fn since_and_until_bound_the_time_range() {
    let mut agent = start(&[]).await;
    for i in 0..10 {
        agent.publish_flow(flow(i, 100 + i as i64));
    }
    let mut client = agent.observer().await;
    let request = GetFlowsRequest {
        since: Some(at(103)),
        until: Some(at(106)),
        ..Default::default()
    };
    assert_eq!(uuids(&collect(&mut client, request).await), ids(&[3, 4, 5, 6]));
    // With since, number counts forward from since (Hubble: since wins for the start).
    let request = GetFlowsRequest {
        since: Some(at(103)),
        number: 2,
        ..Default::default()
    };
    assert_eq!(uuids(&collect(&mut client, request).await), ids(&[3, 4]));
}

#[tokio::test]
async fn first_with_follow_is_invalid_argument() {
    let agent = start(&[]).await;
    let mut client = agent.observer().await;
    let err = client
        .get_flows(GetFlowsRequest {
            first: true,
            follow: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("first"), "{}", err.message());
}

#[tokio::test]
async fn timestamps_outside_protobufs_range_are_invalid_argument() {
    use sightline_proto::Timestamp;
    use sightline_proto::observer::GetAgentEventsRequest;

    let mut agent = start(&[]).await;
    agent.publish_flow(flow(1, 100));
    let mut client = agent.observer().await;
    let ts = |seconds, nanos| Some(Timestamp { seconds, nanos });
    let rejected = [
        ("since", ts(253_402_300_800, 0), None, "253402300800"),
        ("until", None, ts(-62_135_596_801, 0), "-62135596801"),
        ("since", ts(100, 1_000_000_000), None, "1000000000"),
        ("until", None, ts(100, -1), "-1"),
    ];
    for (field, since, until, value) in rejected {
        let request = GetFlowsRequest {
            since,
            until,
            ..Default::default()
        };
        let err = client.get_flows(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}={value}");
        assert!(
            err.message().contains(field) && err.message().contains(value),
            "{field}={value}: {}",
            err.message()
        );
    }
    let err = client
        .get_agent_events(GetAgentEventsRequest {
            since: ts(i64::MAX, 0),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());

    // The ends of the range are valid.
    let request = GetFlowsRequest {
        since: ts(-62_135_596_800, 0),
        until: ts(253_402_300_799, 999_999_999),
        ..Default::default()
    };
    assert_eq!(uuids(&collect(&mut client, request).await), ids(&[1]));
}

#[tokio::test]
async fn invalid_filters_and_masks_are_invalid_argument_naming_field_and_value() {
    let agent = start(&[]).await;
    let mut client = agent.observer().await;
    let cases = [
        (
            FlowFilter {
                source_ip: vec!["10.0.0.300".into()],
                ..Default::default()
            },
            "source_ip",
            "10.0.0.300",
        ),
        (
            FlowFilter {
                destination_port: vec!["http".into()],
                ..Default::default()
            },
            "destination_port",
            "http",
        ),
        (
            FlowFilter {
                destination_port: vec![" 80".into()],
                ..Default::default()
            },
            "destination_port",
            " 80",
        ),
        (
            FlowFilter {
                source_port: vec!["+80".into()],
                ..Default::default()
            },
            "source_port",
            "+80",
        ),
        (
            FlowFilter {
                source_label: vec!["app_=web".into()],
                ..Default::default()
            },
            "source_label",
            "invalid label key \"app_\"",
        ),
        (
            FlowFilter {
                destination_label: vec!["app in (web, we$b)".into()],
                ..Default::default()
            },
            "destination_label",
            "invalid label value \"we$b\"",
        ),
        (
            FlowFilter {
                http_status_code: vec!["6xx".into()],
                ..Default::default()
            },
            "http_status_code",
            "6xx",
        ),
        (
            FlowFilter {
                protocol: vec!["quic".into()],
                ..Default::default()
            },
            "protocol",
            "quic",
        ),
        (
            FlowFilter {
                source_fqdn: vec!["a b".into()],
                ..Default::default()
            },
            "source_fqdn",
            "a b",
        ),
        (
            FlowFilter {
                dns_query: vec!["(".into()],
                ..Default::default()
            },
            "dns_query",
            "(",
        ),
        (
            FlowFilter {
                source_label: vec!["app in x".into()],
                ..Default::default()
            },
            "source_label",
            "app in x",
        ),
        (
            FlowFilter {
                node_name: vec!["a/b/c".into()],
                ..Default::default()
            },
            "node_name",
            "a/b/c",
        ),
        (
            FlowFilter {
                source_pod: vec!["".into()],
                ..Default::default()
            },
            "source_pod",
            "",
        ),
        (
            FlowFilter {
                experimental: Some(sightline_proto::flow::flow_filter::Experimental {
                    cel_expression: vec!["_flow.verdict == 1u".into()],
                }),
                ..Default::default()
            },
            "cel_expression",
            "_flow.verdict == 1u",
        ),
        (
            FlowFilter {
                http_method: vec!["GET".into()],
                event_type: vec![sightline_proto::flow::EventTypeFilter {
                    r#type: 4,
                    ..Default::default()
                }],
                ..Default::default()
            },
            "http_method",
            "GET",
        ),
    ];
    for (filter, field, value) in cases {
        let err = client
            .get_flows(GetFlowsRequest {
                whitelist: vec![filter],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        // An empty value is named as `field=""`: `contains("")` would prove nothing.
        let names_value = if value.is_empty() {
            err.message().contains(&format!("{field}=\"\""))
        } else {
            err.message().contains(value)
        };
        assert!(
            err.message().contains(field) && names_value,
            "{field}: {}",
            err.message()
        );
    }
    let mask = FieldMask {
        paths: vec!["source.nope".into()],
    };
    let err = client
        .get_flows(GetFlowsRequest {
            field_mask: Some(mask),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("field_mask") && err.message().contains("source.nope"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn field_mask_keeps_listed_fields_and_response_time_and_node_name() {
    let mut agent = start(&[]).await;
    agent.publish_flow(flow(1, 100));
    let mut client = agent.observer().await;
    let mask = FieldMask {
        paths: vec!["verdict".into(), "source.pod_name".into()],
    };
    let got = collect(
        &mut client,
        GetFlowsRequest {
            field_mask: Some(mask),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].time, Some(at(100)));
    assert_eq!(got[0].node_name, "node-1");
    let Some(ResponseTypes::Flow(f)) = &got[0].response_types else {
        panic!("{got:?}")
    };
    let full = flow(1, 100);
    assert_eq!(f.verdict, full.verdict);
    assert_eq!(
        f.source.as_ref().unwrap().pod_name,
        full.source.as_ref().unwrap().pod_name
    );
    assert_eq!(f.source.as_ref().unwrap().identity, 0);
    assert!(f.time.is_none() && f.node_name.is_empty() && f.ip.is_none() && f.uuid.is_empty());
}

#[tokio::test]
async fn pipeline_losses_are_forwarded_unfiltered() {
    let mut agent = start(&[]).await;
    agent.publish_flow(flow(1, 100));
    let lost = LostEvent {
        source: LostEventSource::PerfEventRingBuffer as i32,
        num_events_lost: 7,
        ..Default::default()
    };
    agent.publish(Event::Lost {
        time: at(101),
        event: Box::new(lost),
    });
    let mut client = agent.observer().await;
    let request = GetFlowsRequest {
        whitelist: vec![port_filter("1")],
        ..Default::default()
    };
    let got = collect(&mut client, request).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].response_types, Some(ResponseTypes::LostEvents(lost)));
    assert_eq!(got[0].time, Some(at(101)));
    assert_eq!(got[0].node_name, "node-1");
}

#[tokio::test]
async fn follow_streams_new_flows_at_once() {
    let mut agent = start(&[]).await;
    agent.publish_flow(flow(0, 100));
    let mut client = agent.observer().await;
    let mut stream = support::follow(&mut client).await;
    for i in 1..=3 {
        agent.publish_flow(flow(i, 100));
        // The newest event arrives without waiting for a later write.
        let got = support::next(&mut stream).await;
        assert_eq!(uuids(&[got]), ids(&[i]));
    }
    let mut last = client
        .get_flows(GetFlowsRequest {
            follow: true,
            number: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for want in [2, 3] {
        let got = last.message().await.unwrap().unwrap();
        assert_eq!(uuids(&[got]), ids(&[want]));
    }
}

/// Current-thread runtime: the server cannot read while the test writes, so a
/// follower with a 7-event ring falls behind deterministically.
#[tokio::test(flavor = "current_thread")]
async fn a_reader_that_falls_behind_gets_one_aggregated_ring_lost_event() {
    let mut agent = start(&["--event-buffer-capacity", "7"]).await;
    let mut client = agent.observer().await;
    let mut stream = support::follow(&mut client).await;
    for i in 0..100 {
        agent.publish_flow(flow(i, 100));
    }
    let mut got = Vec::new();
    for _ in 0..8 {
        got.push(support::next(&mut stream).await);
    }
    // What is still in the ring comes first; the loss is reported once the reader catches up.
    assert_eq!(uuids(&got), ids(&[93, 94, 95, 96, 97, 98, 99]));
    let Some(ResponseTypes::LostEvents(lost)) = got[7].response_types else {
        panic!("{:?}", got[7])
    };
    assert_eq!(lost.source, LostEventSource::HubbleRingBuffer as i32);
    assert_eq!(lost.num_events_lost, 93);
    assert!(lost.first.is_some() && lost.last.is_some());
    assert_eq!(got[7].node_name, "node-1");
}

/// Current-thread runtime: clients, server and the search for where a request
/// starts share one thread. The only match is the oldest entry of a big ring, so
/// `number: 1` searches the whole ring and sends that flow as soon as the search
/// ends. A ServerStatus sent meanwhile must be answered first.
#[tokio::test(flavor = "current_thread")]
async fn a_rewind_over_a_big_ring_lets_other_requests_through() {
    use sightline_proto::observer::ServerStatusRequest;

    let capacity = (1u32 << 18) - 1;
    let mut agent = start(&["--event-buffer-capacity", &capacity.to_string()]).await;
    agent.publish_flow(flow(0, 0));
    for i in 1..capacity {
        agent.publish(Event::Debug {
            time: at(i64::from(i)),
            event: Box::default(),
        });
    }
    let (mut flows, mut status) = (agent.observer().await, agent.observer().await);
    let request = GetFlowsRequest {
        number: 1,
        whitelist: vec![FlowFilter {
            uuid: vec!["f0".into()],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut stream = flows.get_flows(request).await.unwrap().into_inner();
    // Both are awaited together: whichever the server answers first decides.
    let mut first_flow = Box::pin(stream.message());
    let answer = tokio::select! {
        answer = status.server_status(ServerStatusRequest {}) => answer.unwrap().into_inner(),
        flow = &mut first_flow => panic!("the search was over ({flow:?}) before ServerStatus was answered"),
    };
    assert_eq!(answer.num_flows, u64::from(capacity));
    let found = first_flow.await.unwrap().unwrap();
    assert_eq!(uuids(&[found]), ids(&[0]));
    assert!(stream.message().await.unwrap().is_none());
}

/// Current-thread runtime: the server only runs while the test awaits. A client
/// with small HTTP/2 windows has taken a few flows of a full ring when the writer
/// overwrites the whole ring twice; the rest of what it asked for is reported as
/// one ring loss at the end of the stream (Hubble drops it there).
#[tokio::test(flavor = "current_thread")]
async fn a_non_follow_reader_lapped_mid_read_gets_one_ring_lost_event_at_the_end() {
    let mut agent = start(&[]).await;
    let capacity = 4095u64;
    for i in 0..capacity {
        agent.publish_flow(flow(i, 100));
    }
    let mut client = support::small_window_observer(&agent).await;
    let mut stream = client.get_flows(GetFlowsRequest::default()).await.unwrap().into_inner();
    let mut got = vec![stream.message().await.unwrap().unwrap()];
    for i in capacity..3 * capacity {
        agent.publish_flow(flow(i, 200));
    }
    while let Some(response) = stream.message().await.unwrap() {
        got.push(response);
    }
    let (last, flows) = got.split_last().unwrap();
    let read = uuids(flows);
    assert_eq!(read.len(), flows.len(), "only the last response is a loss: {last:?}");
    assert!(
        !read.is_empty() && read.len() < capacity as usize,
        "read {}",
        read.len()
    );
    let in_order: Vec<u64> = (0..read.len() as u64).collect();
    assert_eq!(read, ids(&in_order), "what was read came in order from the oldest");
    let Some(ResponseTypes::LostEvents(lost)) = &last.response_types else {
        panic!("the stream ends with {last:?}")
    };
    assert_eq!(lost.source, LostEventSource::HubbleRingBuffer as i32);
    assert_eq!(
        lost.num_events_lost + read.len() as u64,
        capacity,
        "every flow asked for is either read or counted as lost"
    );
    assert!(lost.first.is_some() && lost.last.is_some());
}
