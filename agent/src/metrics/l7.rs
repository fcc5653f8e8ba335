//! The L7 parsers' and the kernel's L7 capture counters on `/metrics`, read from the
//! shared `L7Stats` at scrape time.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::l7::{L7Protocol, L7Stats};

/// Exposes the L7 parsers' counters (`sightline_l7_*`) to a Prometheus registry;
/// the values are read from the shared stats at each scrape, never copied.
#[derive(Debug)]
pub struct L7Collector {
    stats: Arc<L7Stats>,
}

impl L7Collector {
    /// A collector over `stats`, the same counters the datapath's L7 parsers increment.
    pub fn new(stats: Arc<L7Stats>) -> Self {
        Self { stats }
    }
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

impl Collector for L7Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.stats;
        let mut records = encoder.encode_descriptor(
            "sightline_l7_records",
            "L7 requests and responses parsed from captured payload, per protocol",
            None,
            MetricType::Counter,
        )?;
        for protocol in L7Protocol::ALL {
            records
                .encode_family(&[("protocol", protocol.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&stats.records(protocol), None)?;
        }
        let mut errors = encoder.encode_descriptor(
            "sightline_l7_parse_errors",
            "Captured L7 bytes or messages the parsers gave up on, per protocol and reason",
            None,
            MetricType::Counter,
        )?;
        for (protocol, reason, value) in stats.all_failures() {
            errors
                .encode_family(&[("protocol", protocol.as_str()), ("reason", reason.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
        counter(
            &mut encoder,
            "sightline_l7_evicted_connections",
            "L7 connections dropped from the parser's table (least recently used) to stay within its limit",
            stats.evicted_connections(),
        )?;
        counter(
            &mut encoder,
            "sightline_l7_duplicate_segments",
            "Captured segments already seen (retransmissions, a second veth), dropped by TCP sequence",
            stats.duplicate_segments(),
        )?;
        let connections = i64::try_from(stats.connections()).unwrap_or(i64::MAX);
        encoder
            .encode_descriptor(
                "sightline_l7_connections",
                "L7 connections the parsers follow now",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&connections)?;
        let capture = stats.capture();
        counter(
            &mut encoder,
            "sightline_l7_captured_segments",
            "TCP segments whose first payload bytes the kernel programs copied for L7 parsing",
            capture.captured,
        )?;
        let mut capture_errors = encoder.encode_descriptor(
            "sightline_l7_capture_errors",
            "TCP segments selected for L7 parsing that the kernel programs could not copy, per reason",
            None,
            MetricType::Counter,
        )?;
        capture_errors
            .encode_family(&[("reason", "copy_failed")])?
            .encode_counter::<NoLabelSet, _, u64>(&capture.copy_failed, None)?;
        counter(
            &mut encoder,
            "sightline_l7_undetected_connections",
            "Connections --l7-detect looked at whose first payload matched no L7 protocol",
            capture.not_detected,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use prometheus_client::registry::Registry;

    use super::*;
    use crate::l7::{CaptureCounters, L7Message, L7Settings, L7Tracker, Segment};

    /// The sample lines of `name` in a scrape of a registry holding only the L7 collector.
    fn scrape(stats: &Arc<L7Stats>, name: &str) -> Vec<String> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(L7Collector::new(Arc::clone(stats))));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        text.lines()
            .filter(|line| line.starts_with(name) && !line.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    fn feed(tracker: &mut L7Tracker, seq: u32, from_client: bool, bytes: &[u8]) {
        let client: SocketAddr = "10.0.0.1:43210".parse().expect("literal address");
        let server: SocketAddr = "10.0.0.2:8080".parse().expect("literal address");
        let (src, dst) = if from_client {
            (client, server)
        } else {
            (server, client)
        };
        let mut out: Vec<L7Message> = Vec::new();
        tracker.on_segment(
            &Segment {
                src,
                dst,
                protocol: L7Protocol::Http1,
                tcp_seq: seq,
                payload_len: bytes.len() as u32,
                captured: bytes,
                timestamp_ns: 1,
                fin_or_rst: false,
                from_client,
            },
            &mut out,
        );
    }

    #[test]
    fn a_malformed_http_stream_shows_as_parse_errors_in_the_scrape() {
        let stats = Arc::new(L7Stats::default());
        let mut tracker = L7Tracker::new(L7Settings {
            stats: Arc::clone(&stats),
            ..L7Settings::default()
        });
        feed(&mut tracker, 1, true, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
        // A request line with a space in the version: not HTTP, and 4 bytes of junk
        // before the next request the parser resynchronises on.
        let broken = b"GET /b HTTP/1 .1\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n";
        feed(&mut tracker, 29, true, broken);

        assert_eq!(
            scrape(&stats, "sightline_l7_records_total"),
            [
                r#"sightline_l7_records_total{protocol="http1"} 2"#,
                r#"sightline_l7_records_total{protocol="http2"} 0"#,
                r#"sightline_l7_records_total{protocol="kafka"} 0"#,
            ]
        );
        let errors = scrape(&stats, "sightline_l7_parse_errors_total{protocol=\"http1\"");
        assert!(
            errors.contains(&r#"sightline_l7_parse_errors_total{protocol="http1",reason="malformed"} 1"#.to_owned()),
            "{errors:#?}"
        );
        assert!(
            errors.contains(&r#"sightline_l7_parse_errors_total{protocol="http1",reason="resync"} 1"#.to_owned()),
            "{errors:#?}"
        );
        assert_eq!(
            scrape(&stats, "sightline_l7_connections "),
            ["sightline_l7_connections 1"]
        );
    }

    #[test]
    fn kernel_capture_counters_and_evictions_are_scraped() {
        let stats = Arc::new(L7Stats::default());
        stats.set_capture(CaptureCounters {
            captured: 12,
            copy_failed: 2,
            not_detected: 5,
        });
        let mut tracker = L7Tracker::new(L7Settings {
            stats: Arc::clone(&stats),
            max_connections: 1,
            ..L7Settings::default()
        });
        let mut out = Vec::new();
        for port in [40000, 40001] {
            let segment = Segment {
                src: SocketAddr::from(([10, 0, 0, 1], port)),
                dst: "10.0.0.2:8080".parse().expect("literal address"),
                protocol: L7Protocol::Http1,
                tcp_seq: 1,
                payload_len: 4,
                captured: b"GET ",
                timestamp_ns: 1,
                fin_or_rst: false,
                from_client: true,
            };
            tracker.on_segment(&segment, &mut out);
        }
        assert_eq!(
            scrape(&stats, "sightline_l7_captured_segments_total"),
            ["sightline_l7_captured_segments_total 12"]
        );
        assert_eq!(
            scrape(&stats, "sightline_l7_capture_errors_total"),
            [r#"sightline_l7_capture_errors_total{reason="copy_failed"} 2"#]
        );
        assert_eq!(
            scrape(&stats, "sightline_l7_undetected_connections_total"),
            ["sightline_l7_undetected_connections_total 5"]
        );
        assert_eq!(
            scrape(&stats, "sightline_l7_evicted_connections_total"),
            ["sightline_l7_evicted_connections_total 1"]
        );
        assert_eq!(
            scrape(
                &stats,
                "sightline_l7_parse_errors_total{protocol=\"http1\",reason=\"evicted\"}"
            ),
            [r#"sightline_l7_parse_errors_total{protocol="http1",reason="evicted"} 1"#]
        );
    }
}
