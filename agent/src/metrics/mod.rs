//! Hubble's flow metrics: handlers configured with Hubble's list syntax (or its
//! dynamic YAML), fed every enriched flow by [`MetricsSink`], scraped from one
//! registry together with the agent's own metrics.
//!
//! `policy` is not offered: it counts policy-verdict events, which the agent does
//! not produce.

pub(crate) mod args;
pub(crate) mod context;
pub(crate) mod dynamic;
pub(crate) mod engine;
pub(crate) mod exemplar;
pub(crate) mod expiry;
pub(crate) mod handlers;
pub mod l7;
pub(crate) mod names;
pub mod options;
pub(crate) mod process;
pub(crate) mod registry;
pub(crate) mod runtime;
pub(crate) mod series;
pub(crate) mod shortcut;
pub(crate) mod sink;

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
