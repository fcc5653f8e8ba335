//! The documented example is a resource the operator accepts as it stands.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use sightline_operator::crd::{AggregationLevel, SightlineConfig};
use sightline_operator::render::render_agent;
use sightline_operator::validate::validate;

#[test]
fn the_documented_example_is_valid_and_renders_a_gpu_profile() {
    let example: SightlineConfig = serde_yaml_ng::from_str(include_str!("../examples/sightlineconfig.yaml")).unwrap();
    let lifetimes = validate(&example.spec, Duration::from_secs(120)).unwrap();
    assert_eq!(lifetimes.renew_before, Duration::from_secs(720 * 3600));
    let nodes = BTreeMap::from([
        ("cpu-1".to_owned(), BTreeMap::new()),
        (
            "gpu-1".to_owned(),
            BTreeMap::from([("node.kubernetes.io/instance-type".to_owned(), "gpu-large".to_owned())]),
        ),
    ]);
    let rendered = render_agent(&example.spec, 1, &nodes).unwrap();
    assert_eq!(
        rendered.per_node["gpu-1"].monitor_aggregation,
        AggregationLevel::Maximum
    );
    assert_eq!(rendered.per_node["cpu-1"].monitor_aggregation, AggregationLevel::Medium);
}
