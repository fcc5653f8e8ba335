//! Property test: GetFlows over the unix socket returns what a naive model of the
//! documented semantics says, for random event sequences, requests and filters.
#![allow(clippy::unwrap_used)]

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sightline_agent::event::Event;
use sightline_proto::flow::{Flow, FlowFilter, Verdict, layer4};
use sightline_proto::observer::GetFlowsRequest;
use sightline_proto::wkt::BoolValue;
use support::{at, collect, start, uuids};

#[derive(Debug, Clone)]
struct Attrs {
    port: u32,
    dropped: bool,
    namespace: &'static str,
    pod: &'static str,
    identity: u32,
    reply: Option<bool>,
}

#[derive(Debug, Clone)]
enum Ev {
    Flow(Attrs),
    Agent,
    Lost,
}

#[derive(Debug, Clone, Default)]
struct Filter {
    ports: Vec<u32>,
    verdict_dropped: Vec<bool>,
    pods: Vec<(&'static str, &'static str)>,
    identities: Vec<u32>,
    reply: Vec<bool>,
}

#[derive(Debug, Clone)]
struct Req {
    number: u64,
    first: bool,
    since: Option<i64>,
    until: Option<i64>,
    whitelist: Vec<Filter>,
    blacklist: Vec<Filter>,
}

fn attrs() -> impl Strategy<Value = Attrs> {
    (
        prop::sample::select(vec![53u32, 80, 443]),
        any::<bool>(),
        prop::sample::select(vec!["default", "shop"]),
        prop::sample::select(vec!["web-1", "api-2"]),
        1u32..4,
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(port, dropped, namespace, pod, identity, reply)| Attrs {
            port,
            dropped,
            namespace,
            pod,
            identity,
            reply,
        })
}

fn event() -> impl Strategy<Value = Ev> {
    prop_oneof![6 => attrs().prop_map(Ev::Flow), 1 => Just(Ev::Agent), 1 => Just(Ev::Lost)]
}

fn filter() -> impl Strategy<Value = Filter> {
    (
        prop::collection::vec(prop::sample::select(vec![53u32, 80, 443]), 0..2),
        prop::collection::vec(any::<bool>(), 0..2),
        prop::collection::vec(
            prop::sample::select(vec![("default", "web"), ("shop", ""), ("", "api"), ("shop", "web")]),
            0..2,
        ),
        prop::collection::vec(1u32..4, 0..2),
        prop::collection::vec(any::<bool>(), 0..2),
    )
        .prop_map(|(ports, verdict_dropped, pods, identities, reply)| Filter {
            ports,
            verdict_dropped,
            pods,
            identities,
            reply,
        })
}

fn request() -> impl Strategy<Value = Req> {
    (
        0u64..8,
        any::<bool>(),
        prop::option::of(0i64..60),
        prop::option::of(0i64..60),
        prop::collection::vec(filter(), 0..3),
        prop::collection::vec(filter(), 0..2),
    )
        .prop_map(|(number, first, since, until, whitelist, blacklist)| Req {
            number,
            first,
            since,
            until,
            whitelist,
            blacklist,
        })
}

fn to_flow(i: usize, time: i64, a: &Attrs) -> Flow {
    let mut f = support::flow(i as u64, time);
    if let Some(layer4::Protocol::Tcp(tcp)) = f.l4.as_mut().and_then(|l4| l4.protocol.as_mut()) {
        tcp.destination_port = a.port;
    }
    f.verdict = if a.dropped {
        Verdict::Dropped as i32
    } else {
        Verdict::Forwarded as i32
    };
    let src = f.source.as_mut().unwrap();
    src.namespace = a.namespace.into();
    src.pod_name = a.pod.into();
    src.identity = a.identity;
    f.is_reply = a.reply.map(|value| BoolValue { value });
    f
}

fn to_proto(f: &Filter) -> FlowFilter {
    FlowFilter {
        destination_port: f.ports.iter().map(|p| p.to_string()).collect(),
        verdict: f
            .verdict_dropped
            .iter()
            .map(|d| {
                if *d {
                    Verdict::Dropped as i32
                } else {
                    Verdict::Forwarded as i32
                }
            })
            .collect(),
        source_pod: f.pods.iter().map(|(ns, pod)| format!("{ns}/{pod}")).collect(),
        source_identity: f.identities.clone(),
        reply: f.reply.clone(),
        ..Default::default()
    }
}

/// The model's own reading of each field's rule.
fn model_matches(f: &Filter, a: &Attrs) -> bool {
    (f.ports.is_empty() || f.ports.contains(&a.port))
        && (f.verdict_dropped.is_empty() || f.verdict_dropped.contains(&a.dropped))
        && (f.pods.is_empty()
            || f.pods
                .iter()
                .any(|(ns, prefix)| (ns.is_empty() || *ns == a.namespace) && a.pod.starts_with(prefix)))
        && (f.identities.is_empty() || f.identities.contains(&a.identity))
        && (f.reply.is_empty() || (a.reply.is_some() || a.dropped) && f.reply.contains(&a.reply.unwrap_or(false)))
}

fn model(events: &[(i64, Ev)], capacity: usize, req: &Req) -> Vec<String> {
    let held = &events[events.len().saturating_sub(capacity)..];
    let matching: Vec<String> = held
        .iter()
        .enumerate()
        .filter_map(|(offset, (time, ev))| {
            let Ev::Flow(a) = ev else { return None };
            let allowed = req.whitelist.is_empty() || req.whitelist.iter().any(|f| model_matches(f, a));
            let denied = req.blacklist.iter().any(|f| model_matches(f, a));
            let in_range = req.since.is_none_or(|s| *time >= s) && req.until.is_none_or(|u| *time <= u);
            (allowed && !denied && in_range).then(|| format!("f{}", events.len() - held.len() + offset))
        })
        .collect();
    let n = req.number as usize;
    if n == 0 || matching.len() <= n {
        matching
    } else if req.first || req.since.is_some() {
        matching[..n].to_vec()
    } else {
        matching[matching.len() - n..].to_vec()
    }
}

#[test]
fn get_flows_matches_the_reference_model() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let strategy = (
        prop::sample::select(vec![7usize, 15, 63]),
        prop::collection::vec((0i64..3, event()), 0..80),
        request(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 96,
        ..Config::default()
    });
    runner
        .run(&strategy, |(capacity, steps, req)| {
            let mut time = 0;
            let events: Vec<(i64, Ev)> = steps
                .into_iter()
                .map(|(delta, ev)| {
                    time += delta;
                    (time, ev)
                })
                .collect();
            let expected = model(&events, capacity, &req);
            let got = runtime.block_on(async {
                let mut agent = start(&["--event-buffer-capacity", &capacity.to_string()]).await;
                for (i, (time, ev)) in events.iter().enumerate() {
                    agent.publish(match ev {
                        Ev::Flow(a) => Event::flow(to_flow(i, *time, a)),
                        Ev::Agent => Event::Agent {
                            time: at(*time),
                            event: Box::default(),
                        },
                        Ev::Lost => Event::Lost {
                            time: at(*time),
                            event: Box::default(),
                        },
                    });
                }
                let mut client = agent.observer().await;
                let request = GetFlowsRequest {
                    number: req.number,
                    first: req.first,
                    since: req.since.map(at),
                    until: req.until.map(at),
                    whitelist: req.whitelist.iter().map(to_proto).collect(),
                    blacklist: req.blacklist.iter().map(to_proto).collect(),
                    ..Default::default()
                };
                uuids(&collect(&mut client, request).await)
            });
            prop_assert_eq!(got, expected);
            Ok(())
        })
        .unwrap();
}
