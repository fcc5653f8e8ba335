//! What the schema cannot judge: checked before anything is rendered, so a bad
//! spec changes nothing and its error names the field.

use std::time::Duration;

use sightline_common::duration::parse_duration;

use crate::crd::SightlineConfigSpec;
use crate::crd::agent::{AgentOverride, AgentSettings};
use crate::crd::flow_filter::FlowFilter;
use crate::crd::observability::{FlowLogConfig, MetricConfig};
use crate::tls::Lifetimes;

/// A spec field the operator rejects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    /// The field, as a JSON path in the spec.
    pub field: String,
    /// Why it was rejected.
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.into(),
        message: message.into(),
    }
}

fn duration(field: &str, text: &str) -> Result<Duration, InvalidField> {
    parse_duration(text).map_err(|err| invalid(field, format!("{text:?} is not a duration: {err}")))
}

fn positive_duration(field: &str, text: &str) -> Result<Duration, InvalidField> {
    let value = duration(field, text)?;
    if value.is_zero() {
        return Err(invalid(field, "must be greater than 0"));
    }
    Ok(value)
}

/// The ring holds 2^n - 1 events (one slot tells full from empty).
fn ring_capacity(field: &str, capacity: u32) -> Result<(), InvalidField> {
    if capacity == 0 || capacity > 1_048_575 || (capacity & (capacity + 1)) != 0 {
        return Err(invalid(
            field,
            format!("{capacity} is not 2^n - 1 between 1 and 1048575 (e.g. 4095, 65535)"),
        ));
    }
    Ok(())
}

/// A filter must also be one Hubble's own parser takes (enum values, nested shapes).
fn filters(field: &str, list: &[FlowFilter]) -> Result<(), InvalidField> {
    for (index, filter) in list.iter().enumerate() {
        let json = serde_json::to_value(filter).map_err(|err| invalid(format!("{field}[{index}]"), err.to_string()))?;
        serde_json::from_value::<sightline_proto::flow::FlowFilter>(json)
            .map_err(|err| invalid(format!("{field}[{index}]"), err.to_string()))?;
    }
    Ok(())
}

fn metrics(field: &str, list: &[MetricConfig]) -> Result<(), InvalidField> {
    let mut seen = Vec::new();
    for (index, metric) in list.iter().enumerate() {
        let at = format!("{field}[{index}]");
        if seen.contains(&metric.name) {
            return Err(invalid(format!("{at}.name"), "handler listed twice"));
        }
        seen.push(metric.name);
        filters(&format!("{at}.includeFilters"), &metric.include_filters)?;
        filters(&format!("{at}.excludeFilters"), &metric.exclude_filters)?;
    }
    Ok(())
}

fn flow_logs(field: &str, list: &[FlowLogConfig]) -> Result<(), InvalidField> {
    let mut seen: Vec<&str> = Vec::new();
    for (index, log) in list.iter().enumerate() {
        let at = format!("{field}[{index}]");
        if seen.contains(&log.name.as_str()) {
            return Err(invalid(format!("{at}.name"), format!("{:?} listed twice", log.name)));
        }
        seen.push(&log.name);
        if let Some(interval) = &log.aggregation_interval {
            duration(&format!("{at}.aggregationInterval"), interval)?;
        }
        if let Some(end) = &log.end {
            time::OffsetDateTime::parse(end, &time::format_description::well_known::Rfc3339)
                .map_err(|err| invalid(format!("{at}.end"), format!("{end:?} is not RFC 3339: {err}")))?;
        }
        filters(&format!("{at}.includeFilters"), &log.include_filters)?;
        filters(&format!("{at}.excludeFilters"), &log.exclude_filters)?;
    }
    Ok(())
}

fn agent(field: &str, settings: &AgentSettings) -> Result<(), InvalidField> {
    positive_duration(
        &format!("{field}.monitorAggregationInterval"),
        &settings.monitor_aggregation_interval,
    )?;
    positive_duration(&format!("{field}.dropEventsInterval"), &settings.drop_events_interval)?;
    ring_capacity(&format!("{field}.eventBufferCapacity"), settings.event_buffer_capacity)?;
    metrics(&format!("{field}.metrics"), &settings.metrics)?;
    flow_logs(&format!("{field}.flowLogs"), &settings.flow_logs)
}

fn agent_override(field: &str, layer: &AgentOverride) -> Result<(), InvalidField> {
    if let Some(interval) = &layer.monitor_aggregation_interval {
        positive_duration(&format!("{field}.monitorAggregationInterval"), interval)?;
    }
    if let Some(interval) = &layer.drop_events_interval {
        positive_duration(&format!("{field}.dropEventsInterval"), interval)?;
    }
    if let Some(capacity) = layer.event_buffer_capacity {
        ring_capacity(&format!("{field}.eventBufferCapacity"), capacity)?;
    }
    if let Some(list) = &layer.metrics {
        metrics(&format!("{field}.metrics"), list)?;
    }
    if let Some(list) = &layer.flow_logs {
        flow_logs(&format!("{field}.flowLogs"), list)?;
    }
    Ok(())
}

/// The TLS lifetimes of a spec, checked against each other and the propagation delay.
pub fn lifetimes(spec: &SightlineConfigSpec, propagation: Duration) -> Result<Lifetimes, InvalidField> {
    let tls = &spec.tls;
    let lifetimes = Lifetimes {
        ca_validity: positive_duration("spec.tls.caValidity", &tls.ca_validity)?,
        cert_validity: positive_duration("spec.tls.certValidity", &tls.cert_validity)?,
        renew_before: positive_duration("spec.tls.renewBefore", &tls.renew_before)?,
        propagation,
    };
    lifetimes.check().map_err(|err| {
        let message = err.to_string();
        let field = if message.contains("renewBefore") {
            "spec.tls.renewBefore"
        } else {
            "spec.tls.certValidity"
        };
        invalid(field, message.trim_start_matches("spec.tls: ").to_owned())
    })?;
    for (index, ip) in tls.extra_ip_addresses.iter().enumerate() {
        ip.parse::<std::net::IpAddr>().map_err(|_| {
            invalid(
                format!("spec.tls.extraIpAddresses[{index}]"),
                format!("{ip:?} is not an IP address"),
            )
        })?;
    }
    Ok(lifetimes)
}

/// Every check; the first problem found.
pub fn validate(spec: &SightlineConfigSpec, propagation: Duration) -> Result<Lifetimes, InvalidField> {
    agent("spec.agent", &spec.agent)?;
    for (index, layer) in spec.node_overrides.iter().enumerate() {
        agent_override(&format!("spec.nodeOverrides[{index}].agent"), &layer.agent)?;
    }
    for (field, value) in [
        (
            "spec.relay.sortBufferDrainTimeout",
            &spec.relay.sort_buffer_drain_timeout,
        ),
        ("spec.relay.retryTimeout", &spec.relay.retry_timeout),
        ("spec.relay.dialTimeout", &spec.relay.dial_timeout),
    ] {
        positive_duration(field, value)?;
    }
    lifetimes(spec, propagation)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PROPAGATION: Duration = Duration::from_secs(120);

    fn check(yaml: &str) -> Result<Lifetimes, InvalidField> {
        validate(&serde_yaml_ng::from_str(yaml).unwrap(), PROPAGATION)
    }

    #[test]
    fn defaults_are_valid() {
        let lifetimes = check("{}").unwrap();
        assert_eq!(lifetimes.cert_validity, Duration::from_secs(365 * 86_400));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("agent: {eventBufferCapacity: 4096}", "spec.agent.eventBufferCapacity"),
            (
                "agent: {monitorAggregationInterval: 0s}",
                "spec.agent.monitorAggregationInterval",
            ),
            (
                "nodeOverrides: [{nodeSelector: {a: b}, agent: {eventBufferCapacity: 10}}]",
                "spec.nodeOverrides[0].agent.eventBufferCapacity",
            ),
            (
                "agent: {metrics: [{name: dns}, {name: dns}]}",
                "spec.agent.metrics[1].name",
            ),
            (
                "agent: {flowLogs: [{name: a, filePath: /x, end: tomorrow}]}",
                "spec.agent.flowLogs[0].end",
            ),
            (
                "agent: {metrics: [{name: drop, includeFilters: [{verdict: [SIDEWAYS]}]}]}",
                "spec.agent.metrics[0].includeFilters[0]",
            ),
            ("tls: {certValidity: 24h, renewBefore: 48h}", "spec.tls.renewBefore"),
            (
                "tls: {caValidity: 24h, certValidity: 48h, renewBefore: 1h}",
                "spec.tls.certValidity",
            ),
            ("tls: {renewBefore: 3m}", "spec.tls.renewBefore"),
            ("tls: {extraIpAddresses: [10.0.0.300]}", "spec.tls.extraIpAddresses[0]"),
            ("relay: {dialTimeout: 0s}", "spec.relay.dialTimeout"),
        ];
        for (yaml, field) in cases {
            let error = check(yaml).unwrap_err();
            assert_eq!(error.field, field, "{yaml}: {error}");
        }
    }

    #[test]
    fn unknown_filter_fields_are_rejected_when_parsing() {
        let error = serde_yaml_ng::from_str::<SightlineConfigSpec>(
            "agent: {metrics: [{name: flow, includeFilters: [{sourcePods: [x]}]}]}",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("sourcePods"), "{error}");
    }
}
