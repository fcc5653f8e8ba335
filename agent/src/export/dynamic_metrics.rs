//! Hubble's `hubble_dynamic_exporter_*` metrics, read at scrape time from what the
//! dynamic exporter last applied:
//!
//! - `hubble_dynamic_exporter_exporters_total{status="active"|"inactive"}` (gauge):
//!   configured exporters, active while running and before their `end`;
//! - `hubble_dynamic_exporter_up{name}` (gauge): 1 for an active exporter, 0 for one
//!   past its `end` (or one whose file could not be opened);
//! - `hubble_dynamic_exporter_reconfigurations_total{op}` (counter): entries added,
//!   updated or removed by a new configuration, and `failure` for a configuration
//!   that could not be read or was refused;
//! - `hubble_dynamic_exporter_config_hash` (gauge): the first 8 bytes of the MD5 of
//!   the applied text, little-endian, as Hubble computes it;
//! - `hubble_dynamic_exporter_config_last_applied` (gauge): Unix time in seconds of
//!   the last successful read of a good configuration.
//!
//! Nothing is exposed until a dynamic configuration was first seen (from
//! `--flowlogs-config-path` or the live configuration), as Hubble registers these
//! only with the dynamic exporter.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use md5::{Digest, Md5};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use sightline_proto::Timestamp;

/// What changed an exporter, in Hubble's label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconfiguration {
    Add,
    Update,
    Remove,
    Failure,
}

impl Reconfiguration {
    const ALL: [Self; 4] = [Self::Add, Self::Update, Self::Remove, Self::Failure];

    fn label(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Update => "update",
            Self::Remove => "remove",
            Self::Failure => "failure",
        }
    }
}

/// One configured exporter as the scrape sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterState {
    pub name: String,
    pub end: Option<Timestamp>,
    /// Its writer is running (false when the file could not be opened, or after `end`).
    pub running: bool,
}

impl ExporterState {
    fn active(&self, now: Timestamp) -> bool {
        self.running
            && self
                .end
                .is_none_or(|end| (end.seconds, end.nanos) > (now.seconds, now.nanos))
    }
}

#[derive(Debug, Default)]
struct Inner {
    seen: AtomicBool,
    applied: AtomicBool,
    reconfigurations: [AtomicU64; 4],
    hash: AtomicU64,
    /// Seconds since the epoch, as `f64` bits.
    last_applied: AtomicU64,
    exporters: Mutex<Vec<ExporterState>>,
}

/// Shared by the dynamic exporter (which records) and the registry (which encodes).
#[derive(Debug, Clone, Default)]
pub struct DynamicExporterMetrics {
    inner: Arc<Inner>,
}

/// Hubble's config hash: MD5 of the file's bytes, the first 8 bytes read little-endian.
pub(crate) fn config_hash(text: &str) -> u64 {
    let digest = Md5::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

fn unix_seconds(at: Timestamp) -> f64 {
    at.seconds as f64 + f64::from(at.nanos) / 1e9
}

impl DynamicExporterMetrics {
    pub fn count(&self, op: Reconfiguration, times: usize) {
        self.inner.seen.store(true, Ordering::Release);
        let index = Reconfiguration::ALL.iter().position(|o| *o == op).unwrap_or(0);
        self.inner.reconfigurations[index].fetch_add(times as u64, Ordering::Relaxed);
    }

    /// A good configuration was read (`text`, at `now`), changed or not.
    pub fn applied(&self, text: &str, now: Timestamp) {
        self.inner.seen.store(true, Ordering::Release);
        self.inner.hash.store(config_hash(text), Ordering::Relaxed);
        self.inner
            .last_applied
            .store(unix_seconds(now).to_bits(), Ordering::Relaxed);
        self.inner.applied.store(true, Ordering::Release);
    }

    pub fn set_exporters(&self, exporters: Vec<ExporterState>) {
        *self.inner.exporters.lock().unwrap_or_else(PoisonError::into_inner) = exporters;
    }

    fn exporters(&self) -> Vec<ExporterState> {
        self.inner
            .exporters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Collector for DynamicExporterMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if !self.inner.seen.load(Ordering::Acquire) {
            return Ok(());
        }
        let now = Timestamp::now();
        let exporters = self.exporters();
        let active = exporters.iter().filter(|e| e.active(now)).count() as i64;
        let inactive = exporters.len() as i64 - active;
        let mut totals = encoder.encode_descriptor(
            "hubble_dynamic_exporter_exporters_total",
            "Number of configured exporters",
            None,
            MetricType::Gauge,
        )?;
        for (status, count) in [("active", active), ("inactive", inactive)] {
            totals.encode_family(&[("status", status)])?.encode_gauge(&count)?;
        }
        let mut up = encoder.encode_descriptor(
            "hubble_dynamic_exporter_up",
            "Status of individual exporters",
            None,
            MetricType::Gauge,
        )?;
        for exporter in &exporters {
            up.encode_family(&[("name", exporter.name.as_str())])?
                .encode_gauge(&i64::from(exporter.active(now)))?;
        }
        let mut reconfigurations = encoder.encode_descriptor(
            "hubble_dynamic_exporter_reconfigurations",
            "Number of dynamic exporters reconfigurations",
            None,
            MetricType::Counter,
        )?;
        for (op, count) in Reconfiguration::ALL.iter().zip(&self.inner.reconfigurations) {
            let count = count.load(Ordering::Relaxed);
            // Like Hubble's counter vector: an operation appears once it happened.
            if count > 0 {
                reconfigurations
                    .encode_family(&[("op", op.label())])?
                    .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
            }
        }
        if self.inner.applied.load(Ordering::Acquire) {
            let hash = self.inner.hash.load(Ordering::Relaxed) as f64;
            encoder
                .encode_descriptor(
                    "hubble_dynamic_exporter_config_hash",
                    "Hash of last applied config",
                    None,
                    MetricType::Gauge,
                )?
                .encode_gauge(&hash)?;
            let last = f64::from_bits(self.inner.last_applied.load(Ordering::Relaxed));
            encoder
                .encode_descriptor(
                    "hubble_dynamic_exporter_config_last_applied",
                    "Timestamp of last applied config",
                    None,
                    MetricType::Gauge,
                )?
                .encode_gauge(&last)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_hash_is_the_md5_prefix_read_little_endian() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(
            config_hash(""),
            u64::from_le_bytes([0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04])
        );
        assert_ne!(config_hash("flowLogs: []\n"), config_hash("flowLogs: []"));
    }

    #[test]
    fn an_exporter_is_active_while_running_and_before_its_end() {
        let now = Timestamp { seconds: 100, nanos: 0 };
        let state = |end: Option<i64>, running| ExporterState {
            name: "a".into(),
            end: end.map(|seconds| Timestamp { seconds, nanos: 0 }),
            running,
        };
        assert!(state(None, true).active(now));
        assert!(state(Some(101), true).active(now));
        assert!(
            !state(Some(100), true).active(now),
            "Hubble: active only while end is after now"
        );
        assert!(!state(None, false).active(now));
    }
}
