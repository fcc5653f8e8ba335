//! Which Node watch events matter to the reconcile: a node that appears, goes away
//! or changes its labels (which decide the `nodeOverrides` it gets). A kubelet
//! rewrites its Node's status every few minutes and on every condition or image
//! change; on a large cluster that is several updates a second, each of which
//! would otherwise cost a full reconcile (nodes, Leases, pods and six Secrets read,
//! two ConfigMaps applied).

use std::collections::{BTreeMap, HashMap};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

type Labels = BTreeMap<String, String>;

/// The labels of every node seen so far, to tell a label change from a status update.
#[derive(Debug, Default)]
pub struct NodeChanges {
    known: HashMap<String, Labels>,
    /// Nodes of a (re)list in progress; it replaces `known` when the list is done.
    relisting: Option<HashMap<String, Labels>>,
    /// The last node of that list, to trigger with when it differs.
    last_listed: Option<Node>,
}

fn name_and_labels(node: &Node) -> (String, Labels) {
    (
        node.metadata.name.clone().unwrap_or_default(),
        node.metadata.labels.clone().unwrap_or_default(),
    )
}

impl NodeChanges {
    /// The node to trigger a reconcile with, when `event` changes the set of nodes
    /// or a node's labels; `None` for status-only updates.
    pub fn relevant(&mut self, event: Event<Node>) -> Option<Node> {
        match event {
            Event::Apply(node) => {
                let (name, labels) = name_and_labels(&node);
                let changed = self.known.get(&name) != Some(&labels);
                self.known.insert(name, labels);
                changed.then_some(node)
            }
            Event::Delete(node) => {
                let (name, _) = name_and_labels(&node);
                self.known.remove(&name).map(|_| node)
            }
            Event::Init => {
                self.relisting = Some(HashMap::new());
                None
            }
            Event::InitApply(node) => {
                let (name, labels) = name_and_labels(&node);
                self.relisting.get_or_insert_with(HashMap::new).insert(name, labels);
                // A relist after a watch gap (410 Gone) may reveal changes that no
                // event reported: compared as a whole at `InitDone`, reported with
                // this node, the last one listed.
                self.last_listed = Some(node);
                None
            }
            Event::InitDone => {
                let listed = self.relisting.take().unwrap_or_default();
                let changed = listed != self.known;
                self.known = listed;
                let node = self.last_listed.take();
                if changed {
                    node.or_else(|| Some(Node::default()))
                } else {
                    None
                }
            }
        }
    }
}

/// Node watch events reduced to those [`NodeChanges::relevant`] keeps.
pub fn stream(api: Api<Node>) -> impl Stream<Item = Result<Node, watcher::Error>> + Send + 'static {
    let mut changes = NodeChanges::default();
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            futures::future::ready(match event {
                Ok(event) => changes.relevant(event).map(Ok),
                Err(error) => Some(Err(error)),
            })
        })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::NodeStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn node(name: &str, pool: &str, heartbeat: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(BTreeMap::from([("pool".to_owned(), pool.to_owned())])),
                ..ObjectMeta::default()
            },
            status: Some(NodeStatus {
                phase: Some(heartbeat.to_owned()),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    fn triggers(changes: &mut NodeChanges, events: Vec<Event<Node>>) -> Vec<String> {
        events
            .into_iter()
            .filter_map(|event| changes.relevant(event))
            .map(|node| node.metadata.name.unwrap_or_default())
            .collect()
    }

    #[test]
    fn status_updates_are_dropped_label_and_membership_changes_kept() {
        let mut changes = NodeChanges::default();
        let first_list = vec![
            Event::Init,
            Event::InitApply(node("a", "cpu", "1")),
            Event::InitApply(node("b", "gpu", "1")),
            Event::InitDone,
        ];
        assert_eq!(triggers(&mut changes, first_list), ["b"]);
        // Kubelet status writes: nothing the reconcile reads changed.
        let heartbeats = vec![Event::Apply(node("a", "cpu", "2")), Event::Apply(node("b", "gpu", "2"))];
        assert!(triggers(&mut changes, heartbeats).is_empty());
        let relabel_join_leave = vec![
            Event::Apply(node("a", "gpu", "3")),
            Event::Apply(node("c", "cpu", "1")),
            Event::Delete(node("b", "gpu", "2")),
        ];
        assert_eq!(triggers(&mut changes, relabel_join_leave), ["a", "c", "b"]);
        // A relist (after 410 Gone) that finds what the events said: nothing new.
        let same = vec![
            Event::Init,
            Event::InitApply(node("a", "gpu", "4")),
            Event::InitApply(node("c", "cpu", "4")),
            Event::InitDone,
        ];
        assert!(triggers(&mut changes, same).is_empty());
        // One that finds a node gone while the watch was down: one trigger.
        let missed_delete = vec![Event::Init, Event::InitApply(node("a", "gpu", "5")), Event::InitDone];
        assert_eq!(triggers(&mut changes, missed_delete), ["a"]);
        let all_gone = vec![Event::Init, Event::InitDone];
        assert_eq!(triggers(&mut changes, all_gone), [""]);
    }
}
