//! One `kube` runtime watcher per kind, feeding the index.
//!
//! The watcher lists, then watches from the list's resourceVersion; when a watch ends
//! with 410 Gone (or the connection drops for longer than the server keeps history)
//! it relists. Each complete list becomes one `Change::Replace`, so objects deleted
//! while the watch was down leave the index.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use super::convert::Watched;
use crate::enrich::{Change, Index};

/// Watches every object of type `K` in the cluster until the task is dropped.
pub async fn run<K>(api: Api<K>, index: Arc<Index>)
where
    K: Watched + Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut listing = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(object)) => listing.extend(object.convert()),
            Ok(watcher::Event::InitDone) => {
                tracing::debug!(kind = ?K::KIND, objects = listing.len(), "listed");
                index.apply(Change::Replace(K::KIND, std::mem::take(&mut listing)));
            }
            Ok(watcher::Event::Apply(object)) => {
                if let Some(object) = object.convert() {
                    index.apply(Change::Upsert(object));
                }
            }
            Ok(watcher::Event::Delete(object)) => {
                if let Some(object) = object.convert() {
                    index.apply(Change::Delete(object.kind(), object.key()));
                }
            }
            Err(error) => tracing::warn!(kind = ?K::KIND, %error, "kubernetes watch failed; retrying"),
        }
    }
}

/// Starts a watcher for every kind the index uses (see `docs/enrichment.md` for the
/// RBAC rules they need).
pub fn spawn_all(client: Client, index: Arc<Index>) -> Vec<JoinHandle<()>> {
    fn spawn<K>(client: &Client, index: &Arc<Index>) -> JoinHandle<()>
    where
        K: Watched + Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default,
    {
        tokio::spawn(run::<K>(Api::all(client.clone()), index.clone()))
    }
    vec![
        spawn::<Namespace>(&client, &index),
        spawn::<Node>(&client, &index),
        spawn::<ReplicaSet>(&client, &index),
        spawn::<Job>(&client, &index),
        spawn::<Pod>(&client, &index),
        spawn::<Service>(&client, &index),
        spawn::<EndpointSlice>(&client, &index),
        spawn::<NetworkPolicy>(&client, &index),
    ]
}
