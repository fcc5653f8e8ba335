//! Loads the embedded eBPF object with the load-time settings and prepares its programs.

use aya::maps::Array;
use aya::programs::{BtfTracePoint, SchedClassifier, Xdp};
use aya::{Btf, Ebpf, EbpfLoader};
use sightline_bpf_common::config::{self, SkbOffsets};

use super::DatapathError;
use super::btf::KernelBtf;
use super::drop_reason::DropReasonNames;
use super::l7_args::L7Port;

/// Program name of the classifier on TC ingress (packets leaving a pod through its veth).
pub const TC_INGRESS: &str = "sightline_tc_ingress";
pub(crate) const TC_EGRESS: &str = "sightline_tc_egress";
pub(crate) const XDP: &str = "sightline_xdp";
pub(crate) const KFREE_SKB: &str = "sightline_kfree_skb";
/// Name of the ring buffer every program writes its records to; take it from
/// [`Loaded::ebpf`] to read them.
pub const EVENTS_MAP: &str = "EVENTS";
pub(crate) const STATS_MAP: &str = "STATS";

static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sightline"));

/// What the programs are loaded with, built by
/// [`DatapathArgs::load_settings`](super::DatapathArgs::load_settings). The first
/// four are live: a running datapath changes them without a reload.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    /// `config::aggregation` value of `--monitor-aggregation`.
    pub(crate) aggregation_level: u32,
    /// `--monitor-aggregation-interval` in nanoseconds.
    pub(crate) report_interval_ns: u64,
    /// Ring-buffer records between reader wakeups (`--ring-wakeup-every`).
    pub(crate) wakeup_every: u32,
    /// `config::drop_mode` value of `--drop-events`.
    pub(crate) drop_mode: u32,
    /// `--drop-events-interval` in nanoseconds.
    pub(crate) drop_report_interval_ns: u64,
    /// Size of the `EVENTS` ring buffer (`--ring-buffer-bytes`).
    pub(crate) ring_buffer_bytes: u32,
    /// Server ports selected for L7 capture.
    pub(crate) l7_ports: Vec<L7Port>,
    /// `--l7-detect`: also capture connections on other ports whose first payload
    /// looks like HTTP/1, HTTP/2 or Kafka.
    pub(crate) l7_detect: bool,
    /// Payload bytes copied per captured TCP segment.
    pub(crate) l7_capture_bytes: u32,
}

/// The loaded object, its classifiers loaded but not yet attached.
pub struct Loaded {
    /// The object itself: attach its programs with
    /// [`Attachments`](super::attach::Attachments) and take its maps from here.
    pub ebpf: Ebpf,
    /// This kernel's drop-reason names read from BTF, for the decoder; empty when
    /// BTF is unusable.
    pub(crate) drop_reasons: DropReasonNames,
}

impl LoadSettings {
    /// The entries of the programs' `SETTINGS` map, by `config::setting` index.
    pub(crate) fn live_values(&self) -> [u64; config::setting::COUNT as usize] {
        let mut values = [0; config::setting::COUNT as usize];
        values[config::setting::AGGREGATION_LEVEL as usize] = self.aggregation_level.into();
        values[config::setting::REPORT_INTERVAL_NS as usize] = self.report_interval_ns;
        values[config::setting::DROP_MODE as usize] = self.drop_mode.into();
        values[config::setting::DROP_REPORT_INTERVAL_NS as usize] = self.drop_report_interval_ns;
        values
    }
}

/// Writes the settings the programs read on every packet; they apply to the next one.
pub(crate) fn write_live_settings(ebpf: &mut Ebpf, settings: &LoadSettings) -> Result<(), DatapathError> {
    let map = ebpf
        .map_mut(config::SETTINGS)
        .ok_or(DatapathError::MissingMap("SETTINGS"))?;
    let mut array = aya::maps::Array::<_, u64>::try_from(map)?;
    for (index, value) in settings.live_values().into_iter().enumerate() {
        array.set(index as u32, value, 0)?;
    }
    Ok(())
}

/// Loads the embedded object with `settings`, loads its classifiers and XDP program,
/// and attaches the drop tracepoint when kernel BTF is usable (drop events are
/// disabled with a warning otherwise). Needs `CAP_BPF` and `CAP_NET_ADMIN`.
pub fn load(settings: &LoadSettings) -> Result<Loaded, DatapathError> {
    let mut offsets = SkbOffsets::default();
    let mut drop_reasons = DropReasonNames::default();
    // Read even while drop events are off, so that turning them on later needs no
    // reload: the drop program is attached whenever the kernel allows it and
    // returns at once while the mode is off.
    let btf_usable = match KernelBtf::from_sys_fs().and_then(|btf| Ok((btf.skb_offsets()?, btf.drop_reasons()?))) {
        Ok((o, names)) => {
            offsets = o;
            drop_reasons = DropReasonNames::new(names);
            true
        }
        Err(error) => {
            tracing::warn!(%error, "kernel BTF unusable: drop events disabled");
            false
        }
    };
    let mut ebpf = EbpfLoader::new()
        .override_global(config::WAKEUP_EVERY, &settings.wakeup_every, true)
        .override_global(config::SKB_OFFSETS, &offsets, true)
        .override_global(config::L7_CAPTURE_BYTES, &settings.l7_capture_bytes, true)
        .override_global(config::L7_DETECT, &u32::from(settings.l7_detect), true)
        .override_global(
            config::L7_PORTS_ENABLED,
            &u32::from(!settings.l7_ports.is_empty()),
            true,
        )
        .map_max_entries(EVENTS_MAP, settings.ring_buffer_bytes)
        .load(PROGRAMS)?;
    for name in [TC_INGRESS, TC_EGRESS] {
        let program: &mut SchedClassifier = program_mut(&mut ebpf, name)?;
        program.load()?;
    }
    fill_l7_ports(&mut ebpf, &settings.l7_ports)?;
    let xdp: &mut Xdp = program_mut(&mut ebpf, XDP)?;
    xdp.load()?;
    write_live_settings(&mut ebpf, settings)?;
    if btf_usable {
        let btf = Btf::from_sys_fs()?;
        let kfree: &mut BtfTracePoint = program_mut(&mut ebpf, KFREE_SKB)?;
        kfree.load("kfree_skb", &btf)?;
        kfree.attach()?;
    }
    Ok(Loaded { ebpf, drop_reasons })
}

/// Before any program is attached, so no connection is judged on an empty table.
fn fill_l7_ports(ebpf: &mut Ebpf, ports: &[L7Port]) -> Result<(), DatapathError> {
    if ports.is_empty() {
        return Ok(());
    }
    let map = ebpf
        .map_mut(config::L7_PORTS)
        .ok_or(DatapathError::MissingMap(config::L7_PORTS))?;
    let mut table: Array<_, u8> = Array::try_from(map)?;
    for port in ports {
        table.set(u32::from(port.port), port.protocol, 0)?;
    }
    Ok(())
}

/// Program `name` of the object as its concrete type; an error names a program the
/// object lacks or a type that does not match.
pub fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, DatapathError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf.program_mut(name).ok_or(DatapathError::MissingProgram(name))?;
    Ok(program.try_into()?)
}
