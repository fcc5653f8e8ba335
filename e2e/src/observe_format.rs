//! One line per flow, in the shape of `hubble observe`'s compact output:
//! `Nov 25 04:12:01.234: ns/pod:port (ID:n) -> ns/pod:port (ID:n) to-endpoint FORWARDED (TCP Flags: SYN)`.
//! Replies are printed client first with `<-`, flows of unknown direction with `<>`.

use std::fmt::Write as _;

use chrono::DateTime;
use sightline_proto::flow::{
    DropReason, Endpoint, Flow, FlowType, L7FlowType, TraceObservationPoint, Verdict, layer4::Protocol,
};
use sightline_proto::observer::{GetFlowsResponse, get_flows_response::ResponseTypes};
use sightline_proto::relay::NodeState;

/// Formats any GetFlows response: flows, node status and lost events.
pub(crate) fn response_line(response: &GetFlowsResponse) -> Option<String> {
    match response.response_types.as_ref()? {
        ResponseTypes::Flow(flow) => Some(flow_line(flow)),
        ResponseTypes::NodeStatus(status) => {
            let state = NodeState::try_from(status.state_change).map_or("UNKNOWN", |s| s.as_str_name());
            let message = if status.message.is_empty() {
                String::new()
            } else {
                format!(": {}", status.message)
            };
            Some(format!("{state}: {}{message}", status.node_names.join(", ")))
        }
        ResponseTypes::LostEvents(lost) => Some(format!(
            "EVENTS LOST: {} events ({:?})",
            lost.num_events_lost,
            lost.source()
        )),
    }
}

fn time(flow: &Flow) -> String {
    flow.time
        .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .map_or_else(
            || "<no time>".to_owned(),
            |t| t.format("%b %e %H:%M:%S%.3f").to_string(),
        )
}

fn endpoint(ip: &str, port: Option<u32>, endpoint: Option<&Endpoint>) -> String {
    let mut out = match endpoint.filter(|e| !e.pod_name.is_empty()) {
        Some(e) => format!("{}/{}", e.namespace, e.pod_name),
        None if ip.contains(':') && port.is_some() => format!("[{ip}]"),
        None => ip.to_owned(),
    };
    if let Some(port) = port {
        let _ = write!(out, ":{port}");
    }
    if let Some(e) = endpoint {
        if let Some(reserved) = e.labels.iter().find_map(|l| l.strip_prefix("reserved:")) {
            let _ = write!(out, " ({reserved})");
        } else if e.identity != 0 {
            let _ = write!(out, " (ID:{})", e.identity);
        }
    }
    out
}

fn ports(flow: &Flow) -> (Option<u32>, Option<u32>) {
    match flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
        Some(Protocol::Tcp(t)) => (Some(t.source_port), Some(t.destination_port)),
        Some(Protocol::Udp(u)) => (Some(u.source_port), Some(u.destination_port)),
        Some(Protocol::Sctp(s)) => (Some(s.source_port), Some(s.destination_port)),
        _ => (None, None),
    }
}

fn kind(flow: &Flow) -> String {
    if flow.verdict() == Verdict::Dropped {
        return DropReason::try_from(flow.drop_reason_desc)
            .ok()
            .filter(|r| *r != DropReason::Unknown)
            .map_or_else(
                || "drop".to_owned(),
                |r| r.as_str_name().to_lowercase().replace('_', "-"),
            );
    }
    if flow.r#type() == FlowType::L7 {
        let l7 = flow.l7.as_ref();
        // Kafka is deprecated upstream, yet still what Hubble fills for Kafka flows.
        #[allow(deprecated)]
        let protocol = match l7.and_then(|l7| l7.record.as_ref()) {
            Some(sightline_proto::flow::layer7::Record::Dns(_)) => "dns",
            Some(sightline_proto::flow::layer7::Record::Http(_)) => "http",
            Some(sightline_proto::flow::layer7::Record::Kafka(_)) => "kafka",
            _ => "l7",
        };
        let phase = match l7.map(|l7| l7.r#type()) {
            Some(L7FlowType::Request) => "request",
            Some(L7FlowType::Response) => "response",
            _ => "sample",
        };
        return format!("{protocol}-{phase}");
    }
    match flow.trace_observation_point() {
        TraceObservationPoint::UnknownPoint => "trace".to_owned(),
        point => point.as_str_name().to_lowercase().replace('_', "-"),
    }
}

fn flow_line(flow: &Flow) -> String {
    let ip = flow.ip.as_ref();
    let (sport, dport) = ports(flow);
    let source = endpoint(ip.map_or("", |ip| ip.source.as_str()), sport, flow.source.as_deref());
    let destination = endpoint(
        ip.map_or("", |ip| ip.destination.as_str()),
        dport,
        flow.destination.as_deref(),
    );
    let (left, arrow, right) = match flow.is_reply.map(|r| r.value) {
        Some(true) => (destination, "<-", source),
        Some(false) => (source, "->", destination),
        None => (source, "<>", destination),
    };
    #[allow(deprecated)] // Summary is deprecated upstream but is still what hubble prints.
    let summary = &flow.summary;
    format!(
        "{}: {left} {arrow} {right} {} {} ({summary})",
        time(flow),
        kind(flow),
        flow.verdict().as_str_name()
    )
}

#[cfg(test)]
mod tests {
    #![allow(deprecated)]
    use super::*;
    use sightline_proto::Timestamp;
    use sightline_proto::flow::{Ip, Layer4, Tcp};
    use sightline_proto::wkt::BoolValue;

    fn tcp_flow(is_reply: Option<bool>) -> Flow {
        Flow {
            time: Some(Timestamp {
                seconds: 1_764_043_921,
                nanos: 234_000_000,
            }),
            verdict: Verdict::Forwarded.into(),
            ip: Some(Ip {
                source: "10.0.1.2".into(),
                destination: "10.0.2.2".into(),
                ..Default::default()
            }),
            l4: Some(Layer4 {
                protocol: Some(Protocol::Tcp(Tcp {
                    source_port: 43_210,
                    destination_port: 8080,
                    flags: None,
                })),
            }),
            source: Some(Box::new(Endpoint {
                namespace: "shop".into(),
                pod_name: "frontend".into(),
                identity: 1234,
                ..Default::default()
            })),
            trace_observation_point: TraceObservationPoint::ToEndpoint.into(),
            is_reply: is_reply.map(|value| BoolValue { value }),
            summary: "TCP Flags: SYN".into(),
            ..Default::default()
        }
    }

    #[test]
    fn request_line_reads_like_hubble_observe() {
        assert_eq!(
            flow_line(&tcp_flow(Some(false))),
            "Nov 25 04:12:01.234: shop/frontend:43210 (ID:1234) -> 10.0.2.2:8080 to-endpoint FORWARDED (TCP Flags: SYN)"
        );
    }

    #[test]
    fn replies_put_the_client_first_and_unknown_direction_uses_both_arrows() {
        assert!(flow_line(&tcp_flow(Some(true))).contains(": 10.0.2.2:8080 <- shop/frontend:43210 (ID:1234) "));
        assert!(flow_line(&tcp_flow(None)).contains(" <> "));
    }

    #[test]
    fn drops_show_their_reason() {
        let mut flow = tcp_flow(Some(false));
        flow.verdict = Verdict::Dropped.into();
        flow.drop_reason_desc = DropReason::PolicyDenied.into();
        assert!(
            flow_line(&flow).contains(" policy-denied DROPPED "),
            "{}",
            flow_line(&flow)
        );
    }
}
