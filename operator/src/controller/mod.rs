//! The controller runtime: kube's `Controller` over `SightlineConfig`, owning the
//! ConfigMaps and Secrets it writes, run only while this replica leads.

pub mod agents;
pub mod conditions;
pub mod context;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod node_changes;
pub mod objects;
pub mod reconcile;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret};
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client};
use tracing::{debug, info};

pub use context::{Context, Settings};
pub use error::Error;

use crate::crd::{IN_FORCE_NAME, SightlineConfig};
use metrics::Metrics;

/// Builds the shared context.
pub fn context(client: Client, settings: Settings, metrics: Arc<Metrics>, identity: &str) -> Arc<Context> {
    let reporter = Reporter {
        controller: objects::MANAGER.to_owned(),
        instance: Some(identity.to_owned()),
    };
    Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        metrics,
        settings,
        backoff: Mutex::new(HashMap::new()),
    })
}

/// Runs the controller until `stop` resolves.
pub async fn run(ctx: Arc<Context>, stop: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let namespace = ctx.settings.namespace.clone();
    let owned = watcher::Config::default().labels(objects::MANAGED_BY);
    let configs: Api<SightlineConfig> = Api::all(client.clone());
    info!(%namespace, "controller started");
    Controller::new(configs, watcher::Config::default())
        .owns(
            Api::<ConfigMap>::namespaced(client.clone(), &namespace),
            watcher::Config::default(),
        )
        .owns(Api::<Secret>::namespaced(client.clone(), &namespace), owned)
        // Node labels decide which overrides apply where, and the nodes that exist
        // which agents count; a kubelet's status writes change neither.
        .watches_stream(node_changes::stream(Api::<Node>::all(client)), |_node| {
            Some(ObjectRef::<SightlineConfig>::new(IN_FORCE_NAME))
        })
        .graceful_shutdown_on(stop)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                debug!(%error, "controller event");
            }
        })
        .await;
    info!("controller stopped");
}
