//! OR-ed filters that merging could not fold into one, with the ones a flow's port
//! rules out skipped.
//!
//! `hubble observe` users combine a port with other fields (`--to-pod x --port
//! 8080`), and such filters differ in two fields, so they do not merge. Most
//! filters of that kind name a port on the same side; indexing them by it means a
//! flow evaluates only the filters for its own port, not every filter of the
//! request.

use rustc_hash::FxHashMap;

use super::CompiledFilter;
use super::predicate::{Predicate, Side, port};
use crate::event::Event;
use crate::flow_record::FlowRecord;

/// Fewer filters than this are simply tried in turn.
const INDEX_FROM: usize = 8;
/// A filter naming more ports than this is tried for every flow rather than
/// indexed under each of them.
const MOST_PORTS_INDEXED: usize = 64;

#[derive(Debug, Clone, Default)]
pub(super) struct AnyOf {
    filters: Vec<CompiledFilter>,
    by_port: Option<PortIndex>,
}

/// Which filters can match a flow, by the flow's port on one side.
#[derive(Debug, Clone)]
struct PortIndex {
    side: Side,
    /// Positions in `filters` of the filters that require each port.
    keyed: FxHashMap<u16, Vec<u32>>,
    /// Positions of the filters without a port on `side`: tried for every flow.
    unkeyed: Vec<u32>,
}

impl AnyOf {
    pub(super) fn new(filters: Vec<CompiledFilter>) -> Self {
        let by_port = PortIndex::build(&filters);
        Self { filters, by_port }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    #[inline]
    pub(super) fn any_flow(&self, flow: &FlowRecord) -> bool {
        let Some(index) = &self.by_port else {
            return self.filters.iter().any(|f| f.matches_flow(flow));
        };
        let keyed = port(flow, index.side)
            .and_then(|p| index.keyed.get(&p))
            .map_or(&[][..], Vec::as_slice);
        index
            .unkeyed
            .iter()
            .chain(keyed)
            .any(|&i| self.filters[i as usize].matches_flow(flow))
    }

    /// Agent and debug events have no port: every filter is tried.
    pub(super) fn any_event(&self, event: &Event) -> bool {
        self.filters.iter().any(|f| f.matches(event))
    }
}

impl PortIndex {
    fn build(filters: &[CompiledFilter]) -> Option<Self> {
        if filters.len() < INDEX_FROM {
            return None;
        }
        let ports_on = |side| filters.iter().filter(|f| port_condition(f, side).is_some()).count();
        let (side, keyed_count) = [Side::Destination, Side::Source]
            .into_iter()
            .map(|side| (side, ports_on(side)))
            .max_by_key(|(_, count)| *count)?;
        if keyed_count * 2 < filters.len() {
            return None;
        }
        let mut index = Self {
            side,
            keyed: FxHashMap::default(),
            unkeyed: Vec::new(),
        };
        for (position, filter) in filters.iter().enumerate() {
            let position = u32::try_from(position).ok()?;
            match port_condition(filter, side).map(|set| set.ports()) {
                Some(ports) if ports.len() <= MOST_PORTS_INDEXED => {
                    for p in ports {
                        index.keyed.entry(p).or_default().push(position);
                    }
                }
                _ => index.unkeyed.push(position),
            }
        }
        Some(index)
    }
}

/// The ports a filter requires on `side`, if it requires any.
fn port_condition(filter: &CompiledFilter, side: Side) -> Option<&super::PortSet> {
    filter.predicates().iter().find_map(|p| match p {
        Predicate::Port(s, set) if *s == side => Some(set),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use sightline_proto::Timestamp;
    use sightline_proto::flow::FlowFilter;

    use super::*;
    use crate::observer::filter::compile;

    /// Filters of every shape the index handles differently: destination ports
    /// with another field (indexed), source ports, no port, a port list beyond
    /// what is indexed, and the "anything" filter absent.
    fn mixed_filters() -> Vec<FlowFilter> {
        let mut filters = Vec::new();
        for (i, port) in [80u32, 443, 8080, 5432, 9999, 80].into_iter().enumerate() {
            filters.push(FlowFilter {
                destination_port: vec![port.to_string()],
                source_identity: vec![1000 + i as u32 * 3],
                ..Default::default()
            });
        }
        filters.push(FlowFilter {
            source_port: vec!["30007".into()],
            verdict: vec![sightline_proto::flow::Verdict::Forwarded as i32],
            ..Default::default()
        });
        filters.push(FlowFilter {
            destination_identity: vec![1005],
            ..Default::default()
        });
        filters.push(FlowFilter {
            destination_port: (1..=100).map(|p| p.to_string()).collect(),
            source_identity: vec![1001],
            ..Default::default()
        });
        filters
    }

    #[test]
    fn indexed_filters_answer_as_trying_every_filter_would() {
        let compiled: Vec<CompiledFilter> = mixed_filters().iter().map(|f| compile(f).unwrap()).collect();
        let indexed = AnyOf::new(compiled.clone());
        let index = indexed.by_port.as_ref().expect("enough port filters to index");
        assert_eq!(index.side, Side::Destination);
        assert_eq!(index.unkeyed.len(), 3, "source port, no port, and too many ports");
        let mut matched = 0;
        for i in 0..2_000 {
            let flow = FlowRecord::new(crate::synthetic::flow(i, "n", Timestamp { seconds: 1, nanos: 0 }));
            let expected = compiled.iter().any(|f| f.matches_flow(&flow));
            assert_eq!(indexed.any_flow(&flow), expected, "flow {i}");
            matched += usize::from(expected);
        }
        assert!(matched > 50 && matched < 1_950, "both outcomes exercised: {matched}");
    }

    #[test]
    fn a_few_filters_or_mostly_portless_ones_are_not_indexed() {
        let few: Vec<CompiledFilter> = mixed_filters()[..5].iter().map(|f| compile(f).unwrap()).collect();
        assert!(AnyOf::new(few).by_port.is_none());
        let portless: Vec<CompiledFilter> = (0..10)
            .map(|i| {
                compile(&FlowFilter {
                    source_identity: vec![i],
                    destination_identity: vec![i],
                    ..Default::default()
                })
                .unwrap()
            })
            .collect();
        assert!(AnyOf::new(portless).by_port.is_none());
    }
}
