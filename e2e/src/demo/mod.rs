//! The README demo: a two-node cluster in network namespaces, an agent per node, the
//! relay, real traffic between pods, and the flows printed as the relay merges them.

mod certs;
mod manifests;
mod processes;
mod topology;
mod traffic;

use std::path::PathBuf;
use std::time::Duration;

use sightline_proto::flow::FlowFilter;
use sightline_proto::observer::GetFlowsRequest;
use sightline_proto::observer::observer_client::ObserverClient;
use tonic::transport::Channel;

pub use certs::Pki;
pub use processes::Process;
pub use topology::{DemoCluster, DemoPod};

use crate::observe_format::response_line;

/// Where the relay listens, for the demo's own client and for `hubble --server`.
pub const RELAY_ADDRESS: &str = "127.0.0.1:4245";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub agent: PathBuf,
    pub relay: PathBuf,
    /// Print what was seen after `duration` and exit instead of following until Ctrl-C.
    pub once: bool,
    pub duration: Duration,
    pub relay_address: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Harness(#[from] crate::HarnessError),
    #[error("{0}")]
    Setup(String),
    #[error("relay: {0}")]
    Relay(#[from] tonic::Status),
    #[error("connecting to the relay: {0}")]
    Connect(#[from] tonic::transport::Error),
}

async fn relay_client(address: &str) -> Result<ObserverClient<Channel>, DemoError> {
    let endpoint = Channel::from_shared(format!("http://{address}")).map_err(|e| DemoError::Setup(e.to_string()))?;
    for _ in 0..100 {
        if let Ok(channel) = endpoint.connect().await {
            return Ok(ObserverClient::new(channel));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(ObserverClient::new(endpoint.connect().await?))
}

/// Builds the cluster, runs it, prints flows; everything is torn down when this returns.
pub async fn run(options: DemoOptions) -> Result<(), DemoError> {
    let workdir = tempdir()?;
    let cluster = DemoCluster::build()?;
    let pki = certs::Pki::write(&workdir)?;
    let manifests = manifests::write(&cluster, &workdir)?;
    let agents = cluster.start_agents(&options.agent, &pki, &workdir, &manifests)?;
    let relay = cluster.start_relay(&options.relay, &pki, &workdir, &options.relay_address)?;

    println!("Sightline demo: nodes {}, pods:", cluster.node_names().join(", "));
    for pod in cluster.pods() {
        let name = manifests::meta(pod.name).map_or(pod.name.to_owned(), |m| format!("{}/{}", m.namespace, m.pod_name));
        println!("  {:<36} {:<16} on {}", name, pod.pod.ipv4, pod.node);
    }
    println!(
        "Relay on {} — from another shell: hubble observe --server {} --follow",
        options.relay_address, options.relay_address
    );
    println!("Agent and relay logs: {}", workdir.display());
    println!();

    let mut client = relay_client(&options.relay_address).await?;
    let traffic = traffic::Traffic::start(&cluster)?;

    let result = if options.once {
        tokio::time::sleep(options.duration).await;
        let request = GetFlowsRequest {
            number: 200,
            blacklist: quiet(),
            ..Default::default()
        };
        let mut stream = client.get_flows(request).await?.into_inner();
        while let Some(response) = stream.message().await? {
            if let Some(line) = response_line(&response) {
                println!("{line}");
            }
        }
        Ok(())
    } else {
        let request = GetFlowsRequest {
            follow: true,
            blacklist: quiet(),
            ..Default::default()
        };
        let mut stream = client.get_flows(request).await?.into_inner();
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break Ok(()),
                message = stream.message() => match message? {
                    Some(response) => if let Some(line) = response_line(&response) { println!("{line}") },
                    None => break Ok(()),
                },
            }
        }
    };
    drop(traffic);
    drop(relay);
    drop(agents);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&workdir);
    result
}

/// IPv6 neighbour discovery and MLD chatter of freshly created interfaces is real but
/// drowns the demo's traffic; leave it out the way a user would with `--not --protocol icmpv6`.
fn quiet() -> Vec<FlowFilter> {
    vec![FlowFilter {
        protocol: vec!["icmpv6".into()],
        ..Default::default()
    }]
}

fn tempdir() -> Result<PathBuf, DemoError> {
    let dir = std::env::temp_dir().join(format!("sightline-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| DemoError::Setup(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}
