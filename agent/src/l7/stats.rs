//! Counters of everything the L7 parsers could not use, per protocol and reason, so a
//! broken or unusual stream shows up in metrics instead of disappearing silently.
//!
//! Atomics, shared (`Arc`) between the tracker that counts and the `/metrics` scrape
//! that reads: counting is one relaxed add, and a scrape never waits for the datapath.

use std::sync::atomic::{AtomicU64, Ordering};

use super::L7Protocol;

/// Why bytes or a message were given up on. The names are stable: they become metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureReason {
    /// A message head that is not valid protocol syntax.
    Malformed,
    /// A head that grew past the buffering limit without completing.
    HeadTooLarge,
    /// Unseen bytes (truncated capture or a lost segment) inside a message head.
    GapInHead,
    /// Bytes skipped while looking for the next message boundary after a failure.
    Resync,
    /// A response with no request waiting for it on the connection.
    UnmatchedResponse,
    /// A request that never got its response (connection ended or evicted first).
    UnansweredRequest,
    /// The parser joined an HTTP/2 connection after its start and cannot decode HPACK.
    MidConnection,
    /// An HPACK block that does not decode (bad index, bad Huffman, table size violation).
    Hpack,
    /// A Kafka request version this parser does not read the topic from.
    UnsupportedVersion,
    /// Connection state dropped to stay within `max_connections`.
    Evicted,
}

impl FailureReason {
    /// Every reason, in label order.
    pub const ALL: [FailureReason; 10] = [
        FailureReason::Malformed,
        FailureReason::HeadTooLarge,
        FailureReason::GapInHead,
        FailureReason::Resync,
        FailureReason::UnmatchedResponse,
        FailureReason::UnansweredRequest,
        FailureReason::MidConnection,
        FailureReason::Hpack,
        FailureReason::UnsupportedVersion,
        FailureReason::Evicted,
    ];

    /// The name used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Malformed => "malformed",
            FailureReason::HeadTooLarge => "head_too_large",
            FailureReason::GapInHead => "gap_in_head",
            FailureReason::Resync => "resync",
            FailureReason::UnmatchedResponse => "unmatched_response",
            FailureReason::UnansweredRequest => "unanswered_request",
            FailureReason::MidConnection => "mid_connection",
            FailureReason::Hpack => "hpack",
            FailureReason::UnsupportedVersion => "unsupported_version",
            FailureReason::Evicted => "evicted",
        }
    }
}

const PROTOCOLS: usize = L7Protocol::ALL.len();
const REASONS: usize = FailureReason::ALL.len();

/// What the kernel programs counted about L7 capture, as last read from their per-CPU
/// counters (the datapath refreshes it every second).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureCounters {
    /// Segments copied into the ring for parsing.
    pub captured: u64,
    /// Segments whose payload could not be copied (`bpf_skb_load_bytes` failed).
    pub copy_failed: u64,
    /// `--l7-detect` connections whose first payload matched no protocol.
    pub not_detected: u64,
}

/// Counters the tracker keeps; read them through `L7Tracker::stats`.
#[derive(Debug, Default)]
pub struct L7Stats {
    failures: [[AtomicU64; REASONS]; PROTOCOLS],
    records: [AtomicU64; PROTOCOLS],
    evicted_connections: AtomicU64,
    duplicate_segments: AtomicU64,
    connections: AtomicU64,
    captured: AtomicU64,
    copy_failed: AtomicU64,
    not_detected: AtomicU64,
}

impl L7Stats {
    /// Counts one failure of `protocol` for `reason`.
    pub fn count_failure(&self, protocol: L7Protocol, reason: FailureReason) {
        self.failures[protocol as usize][reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `records` complete records (none: nothing to write).
    pub(crate) fn count_records(&self, protocol: L7Protocol, records: usize) {
        if records > 0 {
            self.records[protocol as usize].fetch_add(records as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn count_eviction(&self) {
        self.evicted_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_duplicate(&self) {
        self.duplicate_segments.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_connections(&self, connections: usize) {
        self.connections.store(connections as u64, Ordering::Relaxed);
    }

    /// Replaces the kernel's capture counters with a fresh reading.
    pub fn set_capture(&self, capture: CaptureCounters) {
        self.captured.store(capture.captured, Ordering::Relaxed);
        self.copy_failed.store(capture.copy_failed, Ordering::Relaxed);
        self.not_detected.store(capture.not_detected, Ordering::Relaxed);
    }

    /// The capture counters as they are now.
    pub fn capture(&self) -> CaptureCounters {
        CaptureCounters {
            captured: self.captured.load(Ordering::Relaxed),
            copy_failed: self.copy_failed.load(Ordering::Relaxed),
            not_detected: self.not_detected.load(Ordering::Relaxed),
        }
    }

    /// Failures of `protocol` counted for `reason`.
    pub fn failures(&self, protocol: L7Protocol, reason: FailureReason) -> u64 {
        self.failures[protocol as usize][reason as usize].load(Ordering::Relaxed)
    }

    /// Every failure counter, zeros included, for exporting as metrics.
    pub fn all_failures(&self) -> impl Iterator<Item = (L7Protocol, FailureReason, u64)> + '_ {
        L7Protocol::ALL.into_iter().flat_map(move |protocol| {
            FailureReason::ALL
                .into_iter()
                .map(move |reason| (protocol, reason, self.failures(protocol, reason)))
        })
    }

    /// Failures of `protocol` for any reason.
    pub fn total_failures(&self, protocol: L7Protocol) -> u64 {
        self.all_failures()
            .filter(|(p, _, _)| *p == protocol)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// Records of `protocol` the tracker completed.
    pub fn records(&self, protocol: L7Protocol) -> u64 {
        self.records[protocol as usize].load(Ordering::Relaxed)
    }

    /// Connections whose state was dropped because the table was full.
    pub fn evicted_connections(&self) -> u64 {
        self.evicted_connections.load(Ordering::Relaxed)
    }

    /// Segments (or parts of segments) seen before, by TCP sequence range.
    pub fn duplicate_segments(&self) -> u64 {
        self.duplicate_segments.load(Ordering::Relaxed)
    }

    /// Connections the tracker follows now.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}
