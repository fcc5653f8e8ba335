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
    /// A `--metrics` item does not follow `name[:key=value;...]`.
    #[error("metric {item:?}: {reason}")]
    Syntax {
        /// The whole item as written.
        item: String,
        /// What is malformed in it.
        reason: String,
    },
    /// The same handler appears twice; both would register the same metric names.
    #[error("metric {name:?} is listed twice")]
    Duplicate {
        /// The handler name.
        name: String,
    },
    #[error(
        "unknown metric {name:?}: known are flow, drop, tcp, port-distribution, icmp, dns, flows-to-world, http, httpV2, kafka (policy needs policy-verdict events, which this agent does not produce)"
    )]
    /// A handler name Hubble does not have (or `policy`, which needs events the agent
    /// does not produce); the message lists the known ones.
    UnknownHandler {
        /// The name as written.
        name: String,
    },
    #[error("metric {metric:?}: unknown option {option:?} (context options and: {known})")]
    /// An option key the handler does not take.
    UnknownOption {
        /// The handler it was given to.
        metric: String,
        /// The key as written.
        option: String,
        /// The handler's own options, comma-separated, for the message.
        known: String,
    },
    #[error(
        "metric {metric:?}: {option}: unknown context identifier {value:?} (known: identity, namespace, pod, pod-short, pod-name, dns, ip, reserved-identity, workload, workload-name, app)"
    )]
    /// A `sourceContext`/`destinationContext` (or similar) value that is not one of
    /// Hubble's context identifiers.
    UnknownContext {
        /// The handler it was given to.
        metric: String,
        /// The context option, e.g. `sourceContext`.
        option: String,
        /// The identifier that is not known (one `|`-separated alternative).
        value: String,
    },
    #[error("metric {metric:?}: labelsContext: unknown label {label:?} (known: {known})", known = context::CONTEXT_LABELS.join(", "))]
    /// A `labelsContext` entry that is not one of Hubble's context labels.
    UnknownContextLabel {
        /// The handler it was given to.
        metric: String,
        /// The label as written.
        label: String,
    },
    #[error("metrics {first:?} and {second:?} both define {metric}: enable one of them")]
    /// Two handlers that would export the same metric (`http` and `httpV2`).
    Conflict {
        /// The first handler listed.
        first: String,
        /// The handler that conflicts with it.
        second: String,
        /// The metric both would define, e.g. `hubble_http_requests_total`.
        metric: String,
    },
    #[error("metric {metric:?}: {reason}")]
    /// A dynamic metric's `includeFilters`/`excludeFilters` entry that is not a valid FlowFilter.
    Filter {
        /// The dynamic metric's name.
        metric: String,
        /// The JSON or filter compiler's message.
        reason: String,
    },
    /// Both `--metrics` and `--dynamic-metrics-config-path` are set; only one may configure the handlers.
    #[error("--metrics and --dynamic-metrics-config-path are mutually exclusive")]
    StaticAndDynamic,
}
