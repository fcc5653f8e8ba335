//! Hubble's flow metrics: handlers configured with Hubble's list syntax (or its
//! dynamic YAML), fed every enriched flow by [`MetricsSink`], scraped from one
//! registry together with the agent's own metrics.
//!
//! `policy` is not offered: it counts policy-verdict events, which the agent does
//! not produce.

pub mod args;
pub mod context;
pub mod dynamic;
pub mod engine;
pub mod exemplar;
pub mod expiry;
pub mod handlers;
pub mod l7;
pub mod names;
pub mod options;
pub mod process;
pub mod registry;
pub mod runtime;
pub mod series;
pub mod shortcut;
pub mod sink;

pub use args::MetricsArgs;
pub use engine::FlowMetrics;
pub use registry::FlowFamilies;
pub use runtime::MetricsStage;
pub use sink::MetricsSink;

/// Every way a metrics configuration can be wrong; each names what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricsError {
    #[error("metric {item:?}: {reason}")]
    Syntax { item: String, reason: String },
    #[error("metric {name:?} is listed twice")]
    Duplicate { name: String },
    #[error(
        "unknown metric {name:?}: known are flow, drop, tcp, port-distribution, icmp, dns, flows-to-world, http, httpV2, kafka (policy needs policy-verdict events, which this agent does not produce)"
    )]
    UnknownHandler { name: String },
    #[error("metric {metric:?}: unknown option {option:?} (context options and: {known})")]
    UnknownOption {
        metric: String,
        option: String,
        known: String,
    },
    #[error(
        "metric {metric:?}: {option}: unknown context identifier {value:?} (known: identity, namespace, pod, pod-short, pod-name, dns, ip, reserved-identity, workload, workload-name, app)"
    )]
    UnknownContext {
        metric: String,
        option: String,
        value: String,
    },
    #[error("metric {metric:?}: labelsContext: unknown label {label:?} (known: {known})", known = context::CONTEXT_LABELS.join(", "))]
    UnknownContextLabel { metric: String, label: String },
    #[error("metrics {first:?} and {second:?} both define {metric}: enable one of them")]
    Conflict {
        first: String,
        second: String,
        metric: String,
    },
    #[error("metric {metric:?}: {reason}")]
    Filter { metric: String, reason: String },
    #[error("--metrics and --dynamic-metrics-config-path are mutually exclusive")]
    StaticAndDynamic,
}
