//! The eBPF datapath: loads the programs from `bpf/programs`, attaches them to the
//! interfaces chosen by `--interfaces` (by default every veth whose peer lives in
//! another network namespace), follows interfaces as they come and go, and decodes
//! ring-buffer records into Hubble flows for an `EventSink`.

pub mod attach;
pub(crate) mod btf;
pub(crate) mod clock;
pub(crate) mod conntrack;
pub mod ctnetlink;
pub(crate) mod debug;
pub mod decode;
pub mod dns;
mod dns_latency;
pub mod drop_reason;
pub(crate) mod interfaces;
pub(crate) mod l7_args;
pub mod loader;
mod netns;
pub(crate) mod reader;
mod settings;

use std::future::Future;
use std::time::Duration;

use aya::maps::{PerCpuArray, RingBuf};
use thiserror::Error;
use tokio::io::unix::AsyncFd;

use self::attach::Attachments;
use self::debug::{DebugEvents, DebugNote};
pub use self::decode::{DecodeError, Decoder, InterfaceInfo, InterfaceRole};
use self::interfaces::{Link, LinkChange, Selector};
use self::reader::Reader;
pub use self::settings::{AggregationLevel, DatapathArgs, DropEvents, LiveDatapath, TcAttachMode};
use crate::event::EventSink;

/// Why the datapath could not start or stopped. Most are fatal at startup (missing
/// privileges, a kernel without the needed features); the agent exits with the text.
#[derive(Debug, Error)]
pub enum DatapathError {
    /// The kernel rejected the object or a map (often missing `CAP_BPF` or memlock).
    #[error("loading eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    /// Loading, attaching or detaching a program failed (e.g. the verifier refused it).
    #[error("eBPF program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    /// A map could not be opened as the expected type or written.
    #[error("eBPF map: {0}")]
    Map(#[from] aya::maps::MapError),
    /// Creating the clsact qdisc for netlink attachment failed.
    #[error("TC setup: {0}")]
    Tc(#[from] aya::programs::tc::TcError),
    /// `/sys/kernel/btf/vmlinux` could not be read for the drop tracepoint.
    #[error("kernel BTF: {0}")]
    Btf(#[from] aya::BtfError),
    /// The embedded object lacks this program: the agent and `bpf/programs` disagree.
    #[error("the eBPF object has no program {0}")]
    MissingProgram(&'static str),
    /// The embedded object lacks this map: the agent and `bpf/programs` disagree.
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    /// Listing or watching links over rtnetlink, or registering the ring's descriptor.
    #[error("netlink: {0}")]
    Netlink(#[from] std::io::Error),
    /// An `--l7-*` flag does not parse; the text names the flag and value.
    #[error(transparent)]
    L7Args(#[from] l7_args::L7ArgsError),
}

/// Runs the datapath until `shutdown` completes, then detaches everything it attached.
pub async fn run(
    args: DatapathArgs,
    node_name: String,
    sink: &mut dyn EventSink,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DatapathError> {
    let (_fixed, live) = tokio::sync::watch::channel(args.live());
    run_live(args, node_name, sink, shutdown, live).await
}

/// [`run`], applying every new value of `live` while running: the kernel settings
/// at the next packet, the interface patterns by attaching to and detaching from
/// the links already there. Nothing is reloaded, so no event is lost.
pub async fn run_live(
    args: DatapathArgs,
    node_name: String,
    sink: &mut dyn EventSink,
    shutdown: impl Future<Output = ()>,
    mut live: tokio::sync::watch::Receiver<LiveDatapath>,
) -> Result<(), DatapathError> {
    let args = args.with_live(&live.borrow_and_update());
    let loaded = loader::load(&args.load_settings()?)?;
    let mut ebpf = loaded.ebpf;
    let ring = RingBuf::try_from(
        ebpf.take_map(loader::EVENTS_MAP)
            .ok_or(DatapathError::MissingMap("EVENTS"))?,
    )?;
    let stats = PerCpuArray::try_from(
        ebpf.take_map(loader::STATS_MAP)
            .ok_or(DatapathError::MissingMap("STATS"))?,
    )?;
    let mut reader = Reader::new(ring, stats);
    // A duplicate of the ring's fd, owned by the AsyncFd, signals readiness; the Reader keeps the map.
    let ring_fd = reader.ring_fd().try_clone_to_owned()?;
    // SAFETY: the AsyncFd owns `ring_fd`, so it stays open and unchanged for its lifetime.
    let ring_ready = unsafe { AsyncFd::register(ring_fd) }.map_err(std::io::Error::from)?;
    let mut decoder = Decoder::new(node_name, loaded.drop_reasons);
    decoder.set_l7_settings(args.l7.settings());
    for unknown in decoder.ignore_drop_reasons(&args.drop_events_ignore) {
        tracing::warn!(
            reason = unknown,
            "--drop-events-ignore names a drop reason this kernel does not have"
        );
    }
    let mut selector = Selector {
        tc_patterns: args.interfaces.clone(),
        xdp_patterns: args.xdp_interfaces.clone(),
    };
    let mut attachments = Attachments::new(args.tc_attach);

    let mut debug = DebugEvents::new(args.debug_events);
    let mut namespaces = netns::WatchedNamespaces::new(&mut ebpf)?;
    let mut pod_namespaces = std::collections::HashSet::new();
    let (links, mut changes) = interfaces::watch_links().await?;
    // Kept so that a new interface pattern can be applied to links already there.
    let mut known_links = std::collections::HashMap::new();
    for link in links {
        for note in follow(&mut ebpf, &mut attachments, &mut decoder, &selector, &link) {
            debug.emit(sink, note);
        }
        pod_namespaces.extend(link.peer_netns_id.filter(|_| selector.tc_role(&link).is_some()));
        known_links.insert(link.index, link);
    }
    namespaces.follow_peers(&pod_namespaces).await;

    let mut drain_timer = tokio::time::interval(args.ring_drain_interval);
    drain_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lost_timer = tokio::time::interval(Duration::from_secs(1));
    let mut clock_timer = tokio::time::interval(Duration::from_secs(60));
    let mut live_open = true;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            guard = ring_ready.readable() => {
                if let Ok(mut guard) = guard {
                    guard.clear_ready();
                }
                reader.drain(&mut decoder, &mut debug, sink);
            }
            change = changes.recv() => match change {
                Some(LinkChange::Present(link)) => {
                    for note in follow(&mut ebpf, &mut attachments, &mut decoder, &selector, &link) {
                        debug.emit(sink, note);
                    }
                    if let Some(nsid) = link.peer_netns_id.filter(|_| selector.tc_role(&link).is_some())
                        && pod_namespaces.insert(nsid)
                    {
                        namespaces.follow_peers(&pod_namespaces).await;
                    }
                    known_links.insert(link.index, link);
                }
                Some(LinkChange::Gone(ifindex)) => {
                    known_links.remove(&ifindex);
                    if let Some(name) = attachments.forget(&mut ebpf, ifindex) {
                        tracing::info!(interface = name, "interface gone");
                        debug.emit(sink, DebugNote {
                            message: format!("interface {name} gone: programs detached"),
                            ifindex: Some(ifindex),
                            cpu: None,
                        });
                    }
                    decoder.set_interface(ifindex, None);
                }
                None => {
                    tracing::warn!("netlink link watch ended; interfaces are no longer followed");
                    changes = tokio::sync::mpsc::unbounded_channel().1;
                }
            },
            changed = live.changed(), if live_open => {
                if changed.is_err() {
                    live_open = false;
                    continue;
                }
                let settings = live.borrow_and_update().clone();
                // The L7 flags parsed at start-up and do not change, so this cannot fail
                // unless the arguments were mended in between; keep the old settings if so.
                let load = match args.with_live(&settings).load_settings() {
                    Ok(load) => load,
                    Err(error) => {
                        tracing::warn!(%error, "cannot apply the new datapath settings; the previous ones stay");
                        continue;
                    }
                };
                if let Err(error) = loader::write_live_settings(&mut ebpf, &load) {
                    tracing::warn!(%error, "cannot write the new datapath settings; the previous ones stay");
                }
                if selector.tc_patterns != settings.interfaces {
                    selector.tc_patterns = settings.interfaces.clone();
                    for link in known_links.values() {
                        let wanted = selector.tc_role(link).is_some();
                        if !wanted && let Some(name) = attachments.detach_tc(&mut ebpf, link.index) {
                            tracing::info!(interface = name, "no longer selected by --interfaces: detached");
                            decoder.set_interface(link.index, None);
                        }
                        for note in follow(&mut ebpf, &mut attachments, &mut decoder, &selector, link) {
                            debug.emit(sink, note);
                        }
                        if let Some(nsid) = link.peer_netns_id.filter(|_| wanted) {
                            pod_namespaces.insert(nsid);
                        }
                    }
                    namespaces.follow_peers(&pod_namespaces).await;
                }
                tracing::info!(?settings, "datapath settings applied");
            }
            _ = drain_timer.tick() => { reader.drain(&mut decoder, &mut debug, sink); }
            _ = lost_timer.tick() => {
                reader.report_lost(&mut debug, sink);
                reader.report_l7_capture(&args.l7.stats);
                sink.idle();
            }
            _ = clock_timer.tick() => decoder.resample_clock(),
        }
    }
    attachments.detach_all(&mut ebpf).await;
    // Events already in the ring are still delivered.
    reader.drain(&mut decoder, &mut debug, sink);
    reader.report_lost(&mut debug, sink);
    reader.report_l7_capture(&args.l7.stats);
    sink.idle();
    Ok(())
}

/// Attaches what `selector` wants on `link`; returns what happened, for debug events.
fn follow(
    ebpf: &mut aya::Ebpf,
    attachments: &mut Attachments,
    decoder: &mut Decoder,
    selector: &Selector,
    link: &Link,
) -> Vec<DebugNote> {
    let mut notes = Vec::new();
    let mut note = |message: String| {
        notes.push(DebugNote {
            message,
            ifindex: Some(link.index),
            cpu: None,
        })
    };
    if let Some(role) = selector.tc_role(link)
        && !attachments.has_tc(link.index)
    {
        match attachments.attach_tc(ebpf, link.index, &link.name) {
            Ok(()) => {
                tracing::info!(interface = link.name, ifindex = link.index, ?role, "observing");
                note(format!("TC programs attached to {} ({role:?})", link.name));
                decoder.set_interface(
                    link.index,
                    Some(InterfaceInfo {
                        name: link.name.clone(),
                        role,
                    }),
                );
            }
            Err(error) => {
                tracing::warn!(%error, interface = link.name, "cannot attach TC programs");
                note(format!("cannot attach TC programs to {}: {error}", link.name));
            }
        }
    }
    if selector.wants_xdp(link) && !attachments.has_xdp(link.index) {
        match attachments.attach_xdp(ebpf, link.index, &link.name) {
            Ok(()) => {
                tracing::info!(interface = link.name, "observing with XDP");
                note(format!("XDP program attached to {}", link.name));
                decoder.set_interface(
                    link.index,
                    Some(InterfaceInfo {
                        name: link.name.clone(),
                        role: InterfaceRole::Uplink,
                    }),
                );
            }
            Err(error) => {
                tracing::warn!(%error, interface = link.name, "cannot attach XDP program");
                note(format!("cannot attach the XDP program to {}: {error}", link.name));
            }
        }
    }
    notes
}
