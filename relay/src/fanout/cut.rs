//! The `number` window of a bounded request, applied to the merged responses of
//! every peer: the cluster's newest (or oldest) N, not N per node.

use crate::merge::Merge;

/// Cuts `number` counted events off the sorted `items`: the first ones with `first`,
/// else the last ones. Uncounted events (lost events, node status) inside the cut stay.
pub(super) fn cut<M: Merge>(mut items: Vec<M>, number: u64, first: bool) -> Vec<M> {
    items.sort_by_key(|item| item.time_nanos());
    let number = usize::try_from(number).unwrap_or(usize::MAX);
    if first {
        let mut counted = 0;
        let end = items.iter().position(|item| {
            if counted == number {
                return true;
            }
            counted += usize::from(item.counts());
            false
        });
        items.truncate(end.unwrap_or(items.len()));
    } else {
        let mut counted = 0;
        let mut start = items.len();
        while start > 0 && counted < number {
            start -= 1;
            counted += usize::from(items[start].counts());
        }
        items.drain(..start);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_proto::Timestamp;
    use sightline_proto::flow::{Flow, LostEvent};
    use sightline_proto::observer::{GetFlowsResponse, get_flows_response::ResponseTypes};

    fn flow(t: i64) -> GetFlowsResponse {
        let time = Timestamp { seconds: t, nanos: 0 };
        GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(Flow {
                time: Some(time),
                ..Default::default()
            })),
            node_name: String::new(),
            time: Some(time),
        }
    }

    fn lost(t: i64) -> GetFlowsResponse {
        GetFlowsResponse {
            response_types: Some(ResponseTypes::LostEvents(LostEvent::default())),
            node_name: String::new(),
            time: Some(Timestamp { seconds: t, nanos: 0 }),
        }
    }

    fn seconds(items: &[GetFlowsResponse]) -> Vec<i64> {
        items.iter().map(|i| i.time.map_or(0, |t| t.seconds)).collect()
    }

    #[test]
    fn last_n_is_cluster_wide_and_skips_uncounted_events_when_counting() {
        let items = vec![flow(5), flow(1), lost(4), flow(3), flow(2)];
        assert_eq!(seconds(&cut(items, 2, false)), [3, 4, 5]);
    }

    #[test]
    fn first_n_stops_after_the_nth_counted_event() {
        let items = vec![flow(5), flow(1), lost(2), flow(3), flow(4)];
        assert_eq!(seconds(&cut(items, 2, true)), [1, 2, 3]);
    }

    #[test]
    fn cut_with_more_than_available_keeps_everything_sorted() {
        assert_eq!(seconds(&cut(vec![flow(2), flow(1)], 10, false)), [1, 2]);
        assert_eq!(seconds(&cut(vec![flow(2), flow(1)], 10, true)), [1, 2]);
    }
}
