//! A datapath agent running inside a node's namespace, collecting what it publishes.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aya::programs::{SchedClassifier, TcAttachType};
use sightline_agent::datapath::{self, AggregationLevel, DatapathArgs};
use sightline_agent::event::{Event, EventSink};
use sightline_e2e::{Netns, Node, Pod};
use sightline_proto::flow::{Flow, layer4};

pub mod services;

struct Collect(Arc<Mutex<Vec<Event>>>);

/// Only counts flows: for runs with too many events to keep.
struct Count(Arc<std::sync::atomic::AtomicU64>);

impl EventSink for Count {
    fn publish(&mut self, _event: Event) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl EventSink for Collect {
    fn publish(&mut self, event: Event) {
        self.0.lock().expect("events lock").push(event);
    }
}

pub struct Agent {
    events: Arc<Mutex<Vec<Event>>>,
    count: Arc<std::sync::atomic::AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Agent {
    /// Starts the datapath in the node's namespace and waits until every named
    /// interface has both classifiers attached.
    pub fn start(node: &Node, args: DatapathArgs, expect_attached: &[&str]) -> Agent {
        Self::start_with(node, args, expect_attached, false)
    }

    /// Like `start`, but the agent only counts events instead of keeping them.
    pub fn start_counting(node: &Node, args: DatapathArgs, expect_attached: &[&str]) -> Agent {
        Self::start_with(node, args, expect_attached, true)
    }

    /// Like `start`, following every new value sent on `live` while running.
    pub fn start_live(
        node: &Node,
        args: DatapathArgs,
        expect_attached: &[&str],
        live: tokio::sync::watch::Receiver<datapath::LiveDatapath>,
    ) -> Agent {
        Self::start_inner(node, args, expect_attached, false, Some(live))
    }

    pub fn count(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn start_with(node: &Node, args: DatapathArgs, expect_attached: &[&str], count_only: bool) -> Agent {
        Self::start_inner(node, args, expect_attached, count_only, None)
    }

    fn start_inner(
        node: &Node,
        args: DatapathArgs,
        expect_attached: &[&str],
        count_only: bool,
        live: Option<tokio::sync::watch::Receiver<datapath::LiveDatapath>>,
    ) -> Agent {
        let live = live.unwrap_or_else(|| tokio::sync::watch::channel(args.live()).1);
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink_events = events.clone();
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sink_count = count.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = node
            .netns()
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                let mut collect = Collect(sink_events);
                let mut counter = Count(sink_count);
                let sink: &mut dyn EventSink = if count_only { &mut counter } else { &mut collect };
                runtime
                    .block_on(datapath::run_live(
                        args,
                        "test-node".to_owned(),
                        sink,
                        async {
                            let _ = stopped.await;
                        },
                        live,
                    ))
                    .map_err(|e| e.to_string())
            })
            .expect("agent thread");
        let agent = Agent {
            events,
            count,
            stop: Some(stop),
            thread: Some(thread),
        };
        // With nothing to wait for, give the agent a moment to load and attach.
        if expect_attached.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
        }
        wait_attached(node.netns(), expect_attached);
        agent
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("events lock").clone()
    }

    pub fn flows(&self) -> Vec<Flow> {
        self.events
            .lock()
            .expect("events lock")
            .iter()
            .filter_map(|e| match e {
                Event::Flow(flow) => Some(flow.to_flow()),
                _ => None,
            })
            .collect()
    }

    /// Polls the collected flows (filtered by `select`) until `done` holds or 10 s pass.
    pub fn wait_for(&self, select: impl Fn(&Flow) -> bool, done: impl Fn(&[Flow]) -> bool) -> Vec<Flow> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let flows: Vec<Flow> = self.flows().into_iter().filter(|f| select(f)).collect();
            if done(&flows) || Instant::now() > deadline {
                return flows;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the agent and returns everything it published.
    pub fn stop(mut self) -> Vec<Event> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("agent thread").expect("datapath run");
        }
        self.events.lock().expect("events lock").clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Names of the TCX programs on an interface (ingress and egress) in a namespace.
/// Waits (up to 20 s) until both TC programs are attached to each of `interfaces`.
pub fn wait_attached(netns: &Netns, interfaces: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for interface in interfaces {
        while query_tcx(netns, interface).map_or(0, |names| names.len()) < 2 {
            assert!(Instant::now() < deadline, "datapath never attached to {interface}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Names of the TCX programs on `interface`; a failed query is an error, never "none".
pub fn tcx_programs(netns: &Netns, interface: &str) -> Vec<String> {
    query_tcx(netns, interface).unwrap_or_else(|error| panic!("TCX query on {interface}: {error}"))
}

fn query_tcx(netns: &Netns, interface: &str) -> Result<Vec<String>, String> {
    let interface = interface.to_owned();
    netns
        .run(move || {
            let mut names = Vec::new();
            for kind in [TcAttachType::Ingress, TcAttachType::Egress] {
                let (_, programs) = SchedClassifier::query_tcx(&interface, kind).map_err(|e| e.to_string())?;
                names.extend(programs.iter().filter_map(|p| p.name_as_str().map(str::to_owned)));
            }
            Ok(names)
        })
        .map_err(|e| e.to_string())?
}

/// What an operator would see with `tc filter show` and a TCX query: nothing of ours.
/// A link is detached when its last descriptor closes, and a process another test
/// forks in that instant holds a copy until it execs: so wait (10 s at most) for
/// the state to settle instead of judging the first look.
pub fn assert_nothing_attached(netns: &Netns, interfaces: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = interfaces.iter().flat_map(|i| leftovers(netns, i)).collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What of ours is still attached to `interface`, described.
fn leftovers(netns: &Netns, interface: &str) -> Vec<String> {
    let mut left = Vec::new();
    let tcx = tcx_programs(netns, interface);
    if tcx.iter().any(|n| n.starts_with("sightline")) {
        left.push(format!("{interface} still has {tcx:?}"));
    }
    for direction in ["ingress", "egress"] {
        let out = netns
            .exec("tc", &["filter", "show", "dev", interface, direction])
            .unwrap_or_else(|error| panic!("tc filter show on {interface}: {error}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("sightline") {
            left.push(format!("{interface} {direction}: {text}"));
        }
    }
    let qdisc = netns
        .exec("tc", &["qdisc", "show", "dev", interface])
        .expect("tc qdisc");
    if String::from_utf8_lossy(&qdisc.stdout).contains("clsact") {
        left.push(format!("clsact left on {interface}"));
    }
    left
}

pub fn ports(flow: &Flow) -> Option<(u32, u32)> {
    match flow.l4.as_ref()?.protocol.as_ref()? {
        layer4::Protocol::Tcp(t) => Some((t.source_port, t.destination_port)),
        layer4::Protocol::Udp(u) => Some((u.source_port, u.destination_port)),
        _ => None,
    }
}

pub fn on_interface(flow: &Flow, ifindex: u32) -> bool {
    flow.interface.as_ref().is_some_and(|i| i.index == ifindex)
}

#[allow(deprecated)]
pub fn summary(flow: &Flow) -> &str {
    &flow.summary
}

pub fn is_reply(flow: &Flow) -> Option<bool> {
    flow.is_reply.map(|b| b.value)
}

pub fn args(level: AggregationLevel) -> DatapathArgs {
    DatapathArgs {
        monitor_aggregation: level,
        ..DatapathArgs::default()
    }
}

pub fn two_pods() -> (Node, Pod, Pod) {
    let mut node = Node::new().expect("node");
    let client = node.add_pod().expect("client pod");
    let server = node.add_pod().expect("server pod");
    (node, client, server)
}

pub fn start(node: &Node, level: AggregationLevel, pods: &[&Pod]) -> Agent {
    let names: Vec<&str> = pods.iter().map(|p| p.host_veth.as_str()).collect();
    Agent::start(node, args(level), &names)
}

pub fn stop_and_check_detached(agent: Agent, node: &Node, pods: &[&Pod]) {
    agent.stop();
    let names: Vec<&str> = pods.iter().map(|p| p.host_veth.as_str()).collect();
    assert_nothing_attached(node.netns(), &names);
}
