//! Hubble's Summary texts for L7 records (the formats of Cilium's
//! `pkg/hubble/parser/seven`), computed from the already redacted record.

use std::fmt::Write as _;

use sightline_proto::flow::{Http, Kafka, L7FlowType};

/// `HTTP/1.1 GET http://host/path` for a request, `HTTP/1.1 200 12ms (GET http://host/path)`
/// for a response (latency truncated to whole milliseconds).
pub(super) fn http(flow_type: L7FlowType, http: &Http, latency_ns: u64) -> String {
    // Sized once (numbers take at most 30 bytes), so the text is one allocation.
    let mut text = String::with_capacity(http.protocol.len() + http.method.len() + http.url.len() + 36);
    let _ = match flow_type {
        L7FlowType::Response => write!(
            text,
            "{} {} {}ms ({} {})",
            http.protocol,
            http.code,
            latency_ns / 1_000_000,
            http.method,
            http.url
        ),
        _ => write!(text, "{} {} {}", http.protocol, http.method, http.url),
    };
    text
}

/// `Kafka request produce correlation id 3 topic 'orders'`, and for responses the same
/// followed by `return code <error_code>`.
pub(super) fn kafka(flow_type: L7FlowType, kafka: &Kafka) -> String {
    match flow_type {
        L7FlowType::Response => format!(
            "Kafka response {} correlation id {} topic '{}' return code {}",
            kafka.api_key, kafka.correlation_id, kafka.topic, kafka.error_code
        ),
        _ => format!(
            "Kafka request {} correlation id {} topic '{}'",
            kafka.api_key, kafka.correlation_id, kafka.topic
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_summaries_match_hubble() {
        let record = Http {
            code: 200,
            method: "GET".into(),
            url: "http://host/path".into(),
            protocol: "HTTP/1.1".into(),
            headers: vec![],
        };
        assert_eq!(http(L7FlowType::Request, &record, 0), "HTTP/1.1 GET http://host/path");
        assert_eq!(
            http(L7FlowType::Response, &record, 12_999_999),
            "HTTP/1.1 200 12ms (GET http://host/path)"
        );
    }

    #[test]
    fn kafka_summaries_match_hubble() {
        let record = Kafka {
            error_code: 3,
            api_version: 9,
            api_key: "produce".into(),
            correlation_id: 3,
            topic: "orders".into(),
        };
        assert_eq!(
            kafka(L7FlowType::Request, &record),
            "Kafka request produce correlation id 3 topic 'orders'"
        );
        assert_eq!(
            kafka(L7FlowType::Response, &record),
            "Kafka response produce correlation id 3 topic 'orders' return code 3"
        );
    }
}
