//! Hubble's flow aggregation for flow logs (`fieldAggregate` with
//! `aggregationInterval`): flows are grouped by the values of the listed fields
//! and, at the end of each interval, one flow per group is written holding those
//! fields, the time of the group's first flow and
//! `aggregate{ingress_flow_count, egress_flow_count, unknown_direction_flow_count}`.
//!
//! As in Hubble a group is keyed on the protobuf encoding of the flow reduced to
//! the fields (the same path rules as the field mask), and the field mask does not
//! apply to aggregated flows. Unlike Hubble, groups are written in the order they
//! were first seen, and their number per interval is capped: a flow that would open
//! a group beyond the cap is dropped and counted as lost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use prost::Message;
use prost::bytes::BytesMut;
use sightline_proto::flow::{Aggregate, Flow, TrafficDirection};
use sightline_proto::wire::Writer;

use crate::flow_record::FlowRecord;
use crate::observer::fieldmask::FlowMask;

/// Groups kept per interval unless configured otherwise. A group costs its key and
/// its reduced flow, a few hundred bytes: 16 384 groups stay within a few MB.
pub(crate) const DEFAULT_MAX_GROUPS: usize = 16_384;

/// What to aggregate on and how often to write.
#[derive(Debug, Clone)]
pub struct AggregationSpec {
    pub fields: FlowMask,
    pub interval: Duration,
    pub max_groups: usize,
}

struct Group {
    flow: Flow,
    counts: Aggregate,
}

/// The groups of the current interval.
pub(crate) struct Aggregator {
    spec: AggregationSpec,
    groups: Vec<Group>,
    index: HashMap<Vec<u8>, usize>,
    next_flush: Instant,
    /// Flows dropped this interval because the group cap was reached.
    overflow: u64,
    encoded: BytesMut,
}

impl Aggregator {
    /// The first interval ends one interval after `now`.
    pub(crate) fn new(spec: AggregationSpec, now: Instant) -> Self {
        let next_flush = now + spec.interval;
        Self {
            spec,
            groups: Vec::new(),
            index: HashMap::new(),
            next_flush,
            overflow: 0,
            encoded: BytesMut::new(),
        }
    }

    /// Counts `record` in its group. False when the flow was dropped: it would
    /// have opened a group beyond the cap.
    pub(crate) fn add(&mut self, record: &FlowRecord) -> bool {
        self.encoded.clear();
        record.write_flow_body(&mut Writer::new(&mut self.encoded));
        let mut reduced = self.spec.fields.apply_encoded(&self.encoded);
        // Decoding and re-encoding puts the fields in one order whichever part of
        // the record (own, attached, deferred) they came from.
        let key = reduced.encode_to_vec();
        let direction = record.flow.traffic_direction;
        let group = match self.index.get(&key) {
            Some(&at) => &mut self.groups[at],
            None => {
                if self.groups.len() >= self.spec.max_groups {
                    self.overflow += 1;
                    return false;
                }
                reduced.time = record.flow.time;
                self.index.insert(key, self.groups.len());
                self.groups.push(Group {
                    flow: reduced,
                    counts: Aggregate::default(),
                });
                let last = self.groups.len() - 1;
                &mut self.groups[last]
            }
        };
        let counts = &mut group.counts;
        let count = match TrafficDirection::try_from(direction) {
            Ok(TrafficDirection::Ingress) => &mut counts.ingress_flow_count,
            Ok(TrafficDirection::Egress) => &mut counts.egress_flow_count,
            _ => &mut counts.unknown_direction_flow_count,
        };
        *count = count.saturating_add(1);
        true
    }

    /// How long until the current interval ends (zero once it has).
    pub(crate) fn until_due(&self, now: Instant) -> Duration {
        self.next_flush.saturating_duration_since(now)
    }

    /// When the interval has ended at `now`: its aggregated flows (first seen
    /// first) and how many flows the cap dropped; the next interval starts.
    pub(crate) fn take_if_due(&mut self, now: Instant) -> Option<(Vec<FlowRecord>, u64)> {
        if now < self.next_flush {
            return None;
        }
        // Intervals stay on their grid; a writer that was held up does not shift them.
        while self.next_flush <= now {
            self.next_flush += self.spec.interval;
        }
        Some(self.take())
    }

    /// Everything counted so far, whether or not the interval has ended (on stop).
    pub(crate) fn take(&mut self) -> (Vec<FlowRecord>, u64) {
        self.index.clear();
        let flows = self
            .groups
            .drain(..)
            .map(|group| {
                let mut flow = group.flow;
                flow.aggregate = Some(group.counts);
                FlowRecord::new(flow)
            })
            .collect();
        (flows, std::mem::take(&mut self.overflow))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use sightline_proto::Timestamp;
    use sightline_proto::flow::{Endpoint, Verdict};

    use super::*;
    use crate::flow_record::Shared;

    fn spec(fields: &[&str], max_groups: usize) -> AggregationSpec {
        AggregationSpec {
            fields: FlowMask::compile(&fields.iter().map(|f| (*f).to_owned()).collect::<Vec<_>>()).unwrap(),
            interval: Duration::from_secs(10),
            max_groups,
        }
    }

    fn flow(seconds: i64, verdict: Verdict, pod: &str, direction: TrafficDirection) -> FlowRecord {
        let mut record = FlowRecord::new(Flow {
            time: Some(Timestamp { seconds, nanos: 0 }),
            uuid: format!("u{seconds}"),
            verdict: verdict as i32,
            traffic_direction: direction as i32,
            node_name: "node-1".into(),
            ..Flow::default()
        });
        record.metadata.destination = Some(Arc::new(Shared::new(Endpoint {
            pod_name: pod.into(),
            namespace: "shop".into(),
            ..Endpoint::default()
        })));
        record
    }

    fn counts(record: &FlowRecord) -> (u32, u32, u32) {
        let a = record.flow.aggregate.unwrap();
        (
            a.ingress_flow_count,
            a.egress_flow_count,
            a.unknown_direction_flow_count,
        )
    }

    /// Groups by the listed fields over one interval, counted per direction,
    /// written when the interval ends and not before; the clock is given, not read.
    #[test]
    fn flows_are_grouped_by_the_fields_and_counted_per_direction_each_interval() {
        let start = Instant::now();
        let mut aggregator = Aggregator::new(spec(&["verdict", "destination.pod_name"], 100), start);
        use TrafficDirection::{Egress, Ingress, Unknown};
        let flows = [
            flow(100, Verdict::Forwarded, "web", Ingress),
            flow(101, Verdict::Forwarded, "web", Egress),
            flow(102, Verdict::Dropped, "web", Ingress),
            flow(103, Verdict::Forwarded, "web", Ingress),
            flow(104, Verdict::Forwarded, "db", Unknown),
        ];
        for record in &flows {
            assert!(aggregator.add(record));
        }
        assert!(aggregator.take_if_due(start + Duration::from_millis(9_999)).is_none());
        assert_eq!(
            aggregator.until_due(start + Duration::from_secs(4)),
            Duration::from_secs(6)
        );
        let (written, dropped) = aggregator.take_if_due(start + Duration::from_secs(10)).unwrap();
        assert_eq!(dropped, 0);
        let summary: Vec<_> = written
            .iter()
            .map(|r| {
                (
                    r.flow.verdict,
                    r.flow.destination.as_ref().unwrap().pod_name.clone(),
                    counts(r),
                    r.flow.time.unwrap().seconds,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (Verdict::Forwarded as i32, "web".to_owned(), (2, 1, 0), 100),
                (Verdict::Dropped as i32, "web".to_owned(), (1, 0, 0), 102),
                (Verdict::Forwarded as i32, "db".to_owned(), (0, 0, 1), 104),
            ]
        );
        // Only the aggregated fields, the first flow's time and the counts remain.
        let first = &written[0].flow;
        assert_eq!(first.uuid, "");
        assert_eq!(first.node_name, "");
        assert_eq!(first.traffic_direction, 0);
        assert_eq!(first.destination.as_ref().unwrap().namespace, "");

        // The next interval starts empty and ends on the same grid.
        assert!(aggregator.add(&flows[0]));
        assert!(aggregator.take_if_due(start + Duration::from_secs(19)).is_none());
        let (written, _) = aggregator.take_if_due(start + Duration::from_secs(20)).unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(counts(&written[0]), (1, 0, 0));
        let (empty, _) = aggregator.take_if_due(start + Duration::from_secs(35)).unwrap();
        assert!(empty.is_empty());
        assert_eq!(
            aggregator.until_due(start + Duration::from_secs(35)),
            Duration::from_secs(5)
        );
    }

    /// The same values from the flow's own fields or from attached metadata are one group.
    #[test]
    fn where_a_value_is_held_does_not_split_a_group() {
        let mut aggregator = Aggregator::new(spec(&["destination.pod_name", "verdict"], 100), Instant::now());
        let attached = flow(1, Verdict::Forwarded, "web", TrafficDirection::Ingress);
        let mut own = attached.clone();
        own.flow.destination = Some(Box::new(attached.destination().unwrap().clone()));
        own.metadata.destination = None;
        aggregator.add(&attached);
        aggregator.add(&own);
        let (written, _) = aggregator.take();
        assert_eq!(written.len(), 1);
        assert_eq!(counts(&written[0]), (2, 0, 0));
    }

    /// Beyond the cap, flows of new groups are dropped and counted; existing groups go on counting.
    #[test]
    fn groups_beyond_the_cap_are_dropped_and_counted() {
        let mut aggregator = Aggregator::new(spec(&["destination.pod_name"], 2), Instant::now());
        let pods = ["a", "b", "c", "d", "a", "c"];
        let kept: Vec<bool> = pods
            .iter()
            .map(|pod| aggregator.add(&flow(1, Verdict::Forwarded, pod, TrafficDirection::Egress)))
            .collect();
        assert_eq!(kept, [true, true, false, false, true, false]);
        let (written, dropped) = aggregator.take();
        assert_eq!(dropped, 3);
        assert_eq!(written.iter().map(counts).collect::<Vec<_>>(), [(0, 2, 0), (0, 1, 0)]);
        let (_, dropped) = aggregator.take();
        assert_eq!(dropped, 0, "the count is per interval");
    }
}
