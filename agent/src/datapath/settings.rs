//! Command-line and environment settings of the datapath.

use std::time::Duration;

use sightline_bpf_common::config::{aggregation, drop_mode};
use sightline_common::duration::parse_duration;

use super::l7_args::{L7Args, L7ArgsError};
use super::loader::LoadSettings;

/// `--monitor-aggregation`: how many packets of a connection the kernel programs
/// report, as Cilium's monitor aggregation levels. Changeable while running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AggregationLevel {
    /// Every packet.
    None,
    /// New flows, any new TCP flag, and once per interval.
    Low,
    /// New flows, SYN/FIN/RST, and once per interval.
    Medium,
    /// New flows and SYN/FIN/RST only.
    Maximum,
}

impl AggregationLevel {
    /// The level's number in the programs' `SETTINGS` map.
    pub(crate) fn kernel_value(self) -> u32 {
        match self {
            Self::None => aggregation::NONE,
            Self::Low => aggregation::LOW,
            Self::Medium => aggregation::MEDIUM,
            Self::Maximum => aggregation::MAXIMUM,
        }
    }
}

/// `--drop-events`: which packets freed by the kernel (`kfree_skb`) become DROPPED
/// flows. Changeable while running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DropEvents {
    /// Drops of traffic the classifiers have seen.
    Observed,
    /// Every packet the kernel drops.
    All,
    // No drop reports; the drop program stays attached and returns at once. A doc
    // comment here would become `--help` text, which must stay as it is.
    #[allow(missing_docs)]
    Off,
}

/// How the classifiers are attached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TcAttachMode {
    /// TCX links where the kernel has them (6.6+), clsact + netlink filters otherwise.
    #[default]
    Auto,
    // TCX links only; attaching fails on kernels without TCX. A doc comment here
    // would become `--help` text, which must stay as it is.
    #[allow(missing_docs)]
    Tcx,
    /// A clsact qdisc (created if absent, removed on exit if we created it) and filters.
    Netlink,
}

/// The datapath's flags (`--interfaces`, `--monitor-aggregation`, ring-buffer and
/// L7 capture settings), flattened into the agent's command line. `Default` gives
/// the same values as the flags' defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct DatapathArgs {
    /// Interfaces to observe with TC (names or globs, comma-separated). Default: every
    /// veth whose peer lives in another network namespace.
    #[arg(long, env = "SIGHTLINE_INTERFACES", value_delimiter = ',')]
    pub interfaces: Vec<String>,
    /// How to attach the TC classifiers.
    #[arg(long, env = "SIGHTLINE_TC_ATTACH", value_enum, default_value = "auto")]
    pub tc_attach: TcAttachMode,
    /// Host uplinks to observe with XDP (names or globs, comma-separated).
    #[arg(long, env = "SIGHTLINE_XDP_INTERFACES", value_delimiter = ',')]
    pub xdp_interfaces: Vec<String>,
    /// How much the kernel aggregates before reporting (as Cilium's monitor aggregation).
    #[arg(long, env = "SIGHTLINE_MONITOR_AGGREGATION", value_enum, default_value = "medium")]
    pub monitor_aggregation: AggregationLevel,
    /// How often an active flow is reported again (levels low and medium).
    #[arg(long, env = "SIGHTLINE_MONITOR_AGGREGATION_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub monitor_aggregation_interval: Duration,
    /// Which kernel packet drops become DROPPED flows.
    #[arg(long, env = "SIGHTLINE_DROP_EVENTS", value_enum, default_value = "observed")]
    pub drop_events: DropEvents,
    /// Kernel drop reasons not reported: frees that are routine rather than network drops
    /// (`NOT_SPECIFIED` is mostly multicast nobody listens to, `QUEUE_PURGE` a closing socket).
    #[arg(
        long,
        env = "SIGHTLINE_DROP_EVENTS_IGNORE",
        value_delimiter = ',',
        default_value = "NOT_SPECIFIED,QUEUE_PURGE"
    )]
    pub drop_events_ignore: Vec<String>,
    /// At most one drop report per flow per this interval; the rest are counted.
    #[arg(long, env = "SIGHTLINE_DROP_EVENTS_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub drop_events_interval: Duration,
    /// Ring-buffer size in bytes (a power of two, at least a page).
    #[arg(long, env = "SIGHTLINE_RING_BUFFER_BYTES", default_value_t = 8 << 20)]
    pub ring_buffer_bytes: u32,
    /// Wake the reader every this many events (1: every event).
    #[arg(long, env = "SIGHTLINE_RING_WAKEUP_EVERY", default_value_t = 64)]
    pub ring_wakeup_every: u32,
    /// Drain the ring at least this often, for events submitted without a wakeup.
    #[arg(long, env = "SIGHTLINE_RING_DRAIN_INTERVAL", default_value = "10ms", value_parser = parse_duration)]
    pub ring_drain_interval: Duration,
    /// Publish debug events (`hubble observe debug-events`): interfaces attached and
    /// detached, undecodable records, kernel ring-buffer losses; at most 10 a second.
    #[arg(long, env = "SIGHTLINE_DEBUG_EVENTS")]
    pub debug_events: bool,
    /// L7 capture flags (`--l7-*`): which connections to parse, how much to copy.
    #[command(flatten)]
    pub l7: L7Args,
}

impl Default for DatapathArgs {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            tc_attach: TcAttachMode::Auto,
            xdp_interfaces: Vec::new(),
            monitor_aggregation: AggregationLevel::Medium,
            monitor_aggregation_interval: Duration::from_secs(5),
            drop_events: DropEvents::Observed,
            drop_events_ignore: vec!["NOT_SPECIFIED".into(), "QUEUE_PURGE".into()],
            drop_events_interval: Duration::from_secs(1),
            ring_buffer_bytes: 8 << 20,
            ring_wakeup_every: 64,
            ring_drain_interval: Duration::from_millis(10),
            debug_events: false,
            l7: L7Args::default(),
        }
    }
}

/// The datapath settings a running agent changes without reloading its programs:
/// the configuration's live keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveDatapath {
    /// `--interfaces` patterns; empty means every veth whose peer is in another netns.
    pub interfaces: Vec<String>,
    /// `--monitor-aggregation`.
    pub monitor_aggregation: AggregationLevel,
    /// `--monitor-aggregation-interval`: how often an active flow is reported again.
    pub monitor_aggregation_interval: Duration,
    /// `--drop-events`.
    pub drop_events: DropEvents,
    /// `--drop-events-interval`: at most one drop report per flow per interval.
    pub drop_events_interval: Duration,
}

impl DatapathArgs {
    /// The live subset of these arguments, the starting value of the agent's
    /// configuration watch.
    pub fn live(&self) -> LiveDatapath {
        LiveDatapath {
            interfaces: self.interfaces.clone(),
            monitor_aggregation: self.monitor_aggregation,
            monitor_aggregation_interval: self.monitor_aggregation_interval,
            drop_events: self.drop_events,
            drop_events_interval: self.drop_events_interval,
        }
    }

    /// These arguments with the live settings of `live` in place of their own.
    pub(crate) fn with_live(&self, live: &LiveDatapath) -> Self {
        Self {
            interfaces: live.interfaces.clone(),
            monitor_aggregation: live.monitor_aggregation,
            monitor_aggregation_interval: live.monitor_aggregation_interval,
            drop_events: live.drop_events,
            drop_events_interval: live.drop_events_interval,
            ..self.clone()
        }
    }

    /// The values [`loader::load`](super::loader::load) gives the eBPF programs. Fails
    /// on L7 flags that do not parse, naming the flag and value.
    pub fn load_settings(&self) -> Result<LoadSettings, L7ArgsError> {
        Ok(LoadSettings {
            aggregation_level: self.monitor_aggregation.kernel_value(),
            report_interval_ns: self.monitor_aggregation_interval.as_nanos() as u64,
            wakeup_every: self.ring_wakeup_every,
            drop_mode: match self.drop_events {
                DropEvents::Observed => drop_mode::OBSERVED,
                DropEvents::All => drop_mode::ALL,
                DropEvents::Off => drop_mode::OFF,
            },
            drop_report_interval_ns: self.drop_events_interval.as_nanos() as u64,
            ring_buffer_bytes: self.ring_buffer_bytes,
            l7_ports: self.l7.ports()?,
            l7_detect: self.l7.l7_detect,
            l7_capture_bytes: self.l7.capture_bytes()?,
        })
    }
}
