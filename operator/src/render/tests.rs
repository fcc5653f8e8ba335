//! Rendering with overrides, restart detection and the checksum.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::Value;

use super::agent::{CONFIG_KEY, METRICS_KEY, NODE_PROFILES_KEY};
use super::{render_agent, render_relay, restart_checksum, restart_needed, restart_settings};
use crate::crd::SightlineConfigSpec;

fn spec(yaml: &str) -> SightlineConfigSpec {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn parse(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

const WITH_OVERRIDES: &str = r#"
agent:
  monitorAggregation: low
  interfaces: [eth0]
  metrics:
    - name: flow
    - name: drop
      contextOptions: [{name: sourceContext, values: [namespace, pod]}]
      includeFilters: [{sourcePod: [kube-system/]}]
nodeOverrides:
  - nodeSelector: {pool: gpu}
    agent:
      monitorAggregation: maximum
      interfaces: [ib0, "eth*"]
  - nodeSelector: {pool: gpu, zone: a}
    agent:
      metrics: [{name: tcp}]
"#;

fn nodes() -> BTreeMap<String, BTreeMap<String, String>> {
    BTreeMap::from([
        ("cpu-1".to_owned(), labels(&[("pool", "cpu")])),
        ("gpu-1".to_owned(), labels(&[("pool", "gpu"), ("zone", "b")])),
        ("gpu-2".to_owned(), labels(&[("pool", "gpu"), ("zone", "b")])),
        ("gpu-3".to_owned(), labels(&[("pool", "gpu"), ("zone", "a")])),
    ])
}

#[test]
fn base_configuration_uses_the_agents_flag_names() {
    let rendered = render_agent(&spec(WITH_OVERRIDES), 7, &nodes()).unwrap();
    let config = parse(&rendered.data[CONFIG_KEY]);
    let keys: Vec<&str> = config.as_object().unwrap().keys().map(String::as_str).collect();
    // Long flags of agent/src/cli.rs and agent/src/datapath/settings.rs (sorted).
    assert_eq!(
        keys,
        [
            "cluster-name",
            "drop-events",
            "drop-events-interval",
            "event-buffer-capacity",
            "interfaces",
            "monitor-aggregation",
            "monitor-aggregation-interval",
        ]
    );
    assert_eq!(config["monitor-aggregation"], "low");
    assert_eq!(config["interfaces"], serde_json::json!(["eth0"]));
    assert_eq!(config["event-buffer-capacity"], 4095);
    let metrics = parse(&rendered.data[METRICS_KEY]);
    assert_eq!(metrics["metrics"][1]["name"], "drop");
    assert_eq!(metrics["metrics"][1]["contextOptions"][0]["values"][1], "pod");
    assert_eq!(
        metrics["metrics"][1]["includeFilters"][0]["sourcePod"][0],
        "kube-system/"
    );
    assert_eq!(rendered.data["generation"], "7");
}

#[test]
fn overrides_apply_in_order_to_matching_nodes_only() {
    let rendered = render_agent(&spec(WITH_OVERRIDES), 1, &nodes()).unwrap();
    let profiles = parse(&rendered.data[NODE_PROFILES_KEY]);
    assert!(profiles.get("cpu-1").is_none(), "no override matches cpu-1: base files");
    let gpu1 = profiles["gpu-1"].as_str().unwrap();
    assert_eq!(profiles["gpu-2"], gpu1, "equal settings share one profile");
    let gpu3 = profiles["gpu-3"].as_str().unwrap();
    assert_ne!(gpu1, gpu3);

    let gpu_config = parse(&rendered.data[&format!("{gpu1}.{CONFIG_KEY}")]);
    assert_eq!(gpu_config["monitor-aggregation"], "maximum");
    assert_eq!(gpu_config["interfaces"], serde_json::json!(["ib0", "eth*"]));
    let gpu_metrics = parse(&rendered.data[&format!("{gpu1}.{METRICS_KEY}")]);
    assert_eq!(
        gpu_metrics["metrics"].as_array().unwrap().len(),
        2,
        "metrics not overridden"
    );

    let zone_a_metrics = parse(&rendered.data[&format!("{gpu3}.{METRICS_KEY}")]);
    assert_eq!(zone_a_metrics["metrics"], serde_json::json!([{"name": "tcp"}]));
    let zone_a_config = parse(&rendered.data[&format!("{gpu3}.{CONFIG_KEY}")]);
    assert_eq!(
        zone_a_config["monitor-aggregation"], "maximum",
        "first layer still applies"
    );

    assert_eq!(
        rendered.per_node["cpu-1"].monitor_aggregation,
        crate::crd::AggregationLevel::Low
    );
    // Three profiles' worth of keys plus the base: the map grows with pools, not nodes.
    assert_eq!(rendered.data.len(), 5 + 2 * 3);
}

#[test]
fn relay_configuration_uses_the_relays_flag_names() {
    let data = render_relay(
        &spec("relay: {sortBufferLenMax: 250, dialTimeout: 2s}\nclusterName: prod"),
        3,
    )
    .unwrap();
    let config = parse(&data["config.yaml"]);
    assert_eq!(
        config,
        serde_json::json!({
            "cluster-name": "prod",
            "sort-buffer-len-max": 250,
            "sort-buffer-drain-timeout": "1s",
            "retry-timeout": "30s",
            "dial-timeout": "2s",
        })
    );
}

#[test]
fn only_restart_settings_move_the_checksum_and_are_named() {
    let before = spec(WITH_OVERRIDES);
    let mut live = before.clone();
    live.agent.monitor_aggregation = crate::crd::AggregationLevel::None;
    live.agent.metrics.clear();
    live.relay.dial_timeout = "9s".into();
    assert!(restart_needed(&restart_settings(&before), &restart_settings(&live)).is_empty());
    assert_eq!(
        restart_checksum(&restart_settings(&before)),
        restart_checksum(&restart_settings(&live))
    );

    let mut ring = before.clone();
    ring.agent.event_buffer_capacity = 65535;
    assert_eq!(
        restart_needed(&restart_settings(&before), &restart_settings(&ring)),
        ["spec.agent.eventBufferCapacity"]
    );
    assert_ne!(
        restart_checksum(&restart_settings(&before)),
        restart_checksum(&restart_settings(&ring))
    );

    let mut pool_ring = before.clone();
    pool_ring.node_overrides[0].agent.event_buffer_capacity = Some(8191);
    assert_eq!(
        restart_needed(&restart_settings(&before), &restart_settings(&pool_ring)),
        ["spec.nodeOverrides[].agent.eventBufferCapacity"]
    );
    assert_ne!(
        restart_checksum(&restart_settings(&before)),
        restart_checksum(&restart_settings(&pool_ring))
    );
}
