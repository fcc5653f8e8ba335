//! One file per Hubble metric handler. Each reads a flow through `FlowRecord`'s
//! accessors, writes its label values into a reused [`LabelKey`], and counts.

use std::sync::Arc;

use super::MetricsError;
use super::context::ContextOptions;
use super::options::MetricSpec;
use super::series::{Collect, LabelKey};
use crate::flow_record::FlowRecord;

mod dns;
mod drop;
mod flow;
mod flows_to_world;
mod http;
mod icmp;
mod kafka;
mod port_distribution;
mod tcp;

/// A configured handler.
pub(crate) trait Handler: Send + std::fmt::Debug {
    fn process(&mut self, flow: &FlowRecord, key: &mut LabelKey);

    /// The families this handler registers, for the scrape.
    fn collectors(&self) -> Vec<Arc<dyn Collect>>;

    /// Removes series in which one of the object labels (see
    /// [`ContextOptions::object_labels`]) has a value `gone` selects.
    fn forget(&mut self, gone: &dyn Fn(&str, &str) -> bool) -> usize;

    /// How many series shortcuts the handler holds (see [`crate::metrics::shortcut`]).
    fn shortcut_count(&self) -> usize {
        0
    }
}

/// Handler names in v1.19, with the options each accepts besides the context.
pub(crate) const HANDLERS: [(&str, &[&str]); 10] = [
    ("flow", &[]),
    ("drop", &[]),
    ("tcp", &[]),
    ("port-distribution", &[]),
    ("icmp", &[]),
    ("dns", &["query", "ignoreAAAA"]),
    ("flows-to-world", &["any-drop", "port", "syn-only"]),
    ("http", &["exemplars"]),
    ("httpV2", &["exemplars"]),
    ("kafka", &[]),
];

/// Checks that every option of `spec` is one its handler knows.
fn check_options(spec: &MetricSpec, own: &[&str]) -> Result<(), MetricsError> {
    for (key, _) in &spec.options {
        let known = ContextOptions::is_context_key(key) || own.iter().any(|o| o.eq_ignore_ascii_case(key));
        if !known {
            return Err(MetricsError::UnknownOption {
                metric: spec.name.clone(),
                option: key.clone(),
                known: own.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
            });
        }
    }
    Ok(())
}

/// Builds the handler `spec` names. `max_series` applies to each family.
pub(crate) fn build(spec: &MetricSpec, max_series: usize) -> Result<Box<dyn Handler>, MetricsError> {
    let Some((_, own)) = HANDLERS.iter().find(|(name, _)| *name == spec.name) else {
        return Err(MetricsError::UnknownHandler {
            name: spec.name.clone(),
        });
    };
    check_options(spec, own)?;
    let context = ContextOptions::parse(&spec.name, &spec.options)?;
    let has = |key: &str| spec.option(key).is_some();
    Ok(match spec.name.as_str() {
        "flow" => Box::new(flow::FlowHandler::new(context, max_series)),
        "drop" => Box::new(drop::DropHandler::new(context, max_series)),
        "tcp" => Box::new(tcp::TcpHandler::new(context, max_series)),
        "port-distribution" => Box::new(port_distribution::PortDistributionHandler::new(context, max_series)),
        "icmp" => Box::new(icmp::IcmpHandler::new(context, max_series)),
        "dns" => Box::new(dns::DnsHandler::new(
            context,
            max_series,
            has("query"),
            has("ignoreAAAA"),
        )),
        "flows-to-world" => Box::new(flows_to_world::FlowsToWorldHandler::new(
            context,
            max_series,
            flows_to_world::Options {
                any_drop: has("any-drop"),
                port: has("port"),
                syn_only: has("syn-only"),
            },
        )),
        "http" | "httpV2" => http_handler(context, max_series, spec.name == "httpV2", spec.option("exemplars")),
        "kafka" => Box::new(kafka::KafkaHandler::new(context, max_series)),
        _ => unreachable!("every name in HANDLERS is built above"),
    })
}

/// Hubble turns exemplars on for the exact value "true" only.
fn http_handler(context: ContextOptions, max_series: usize, v2: bool, exemplars: Option<&str>) -> Box<dyn Handler> {
    use super::exemplar::{ExemplarCounterCell, ExemplarHistogramCell};
    use super::series::{CounterCell, HistogramCell};
    if exemplars == Some("true") {
        Box::new(http::HttpHandler::<ExemplarCounterCell, ExemplarHistogramCell>::new(
            context, max_series, v2, true,
        ))
    } else {
        Box::new(http::HttpHandler::<CounterCell, HistogramCell>::new(
            context, max_series, v2, false,
        ))
    }
}

/// Label names: handler labels before and after the context ones.
fn labels(before: &[&'static str], context: &ContextOptions, after: &[&'static str]) -> Vec<&'static str> {
    let mut names = before.to_vec();
    names.extend(context.label_names());
    names.extend_from_slice(after);
    names
}

/// A predicate over a stored key: true when one of `object_labels` has a value
/// `gone` selects.
fn doomed<'a>(
    object_labels: &'a [&'static str],
    gone: &'a dyn Fn(&str, &str) -> bool,
) -> impl FnMut(&[&'static str], &str) -> bool + 'a {
    move |names, key| {
        if object_labels.is_empty() {
            return false;
        }
        names
            .iter()
            .zip(super::series::label_values(key))
            .any(|(name, value)| object_labels.contains(name) && !value.is_empty() && gone(name, value))
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod shortcut_tests;

#[cfg(test)]
mod exemplar_tests;
