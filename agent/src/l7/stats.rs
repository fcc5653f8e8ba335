//! Counters of everything the L7 parsers could not use, per protocol and reason, so a
//! broken or unusual stream shows up in metrics instead of disappearing silently.

use std::collections::BTreeMap;

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

/// Counters the tracker keeps; read them through `L7Tracker::stats`.
#[derive(Clone, Debug, Default)]
pub struct L7Stats {
    failures: BTreeMap<(L7Protocol, FailureReason), u64>,
    /// Connections whose state was dropped because the table was full.
    pub evicted_connections: u64,
    /// Segments (or parts of segments) seen before, by TCP sequence range.
    pub duplicate_segments: u64,
    /// Records produced, per protocol.
    records: BTreeMap<L7Protocol, u64>,
}

impl L7Stats {
    pub fn count_failure(&mut self, protocol: L7Protocol, reason: FailureReason) {
        *self.failures.entry((protocol, reason)).or_default() += 1;
    }

    pub(crate) fn count_record(&mut self, protocol: L7Protocol) {
        *self.records.entry(protocol).or_default() += 1;
    }

    pub fn failures(&self, protocol: L7Protocol, reason: FailureReason) -> u64 {
        self.failures.get(&(protocol, reason)).copied().unwrap_or(0)
    }

    /// Every non-zero failure counter, for exporting as metrics.
    pub fn all_failures(&self) -> impl Iterator<Item = (L7Protocol, FailureReason, u64)> + '_ {
        self.failures.iter().map(|(&(p, r), &n)| (p, r, n))
    }

    pub fn total_failures(&self, protocol: L7Protocol) -> u64 {
        self.all_failures()
            .filter(|(p, _, _)| *p == protocol)
            .map(|(_, _, n)| n)
            .sum()
    }

    pub fn records(&self, protocol: L7Protocol) -> u64 {
        self.records.get(&protocol).copied().unwrap_or(0)
    }
}
