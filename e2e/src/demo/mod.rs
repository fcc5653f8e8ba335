//! The README demo: a two-node cluster in network namespaces, an agent per node, the
//! relay, real traffic between pods, and the flows printed as the relay merges them.

mod certs;
mod manifests;
mod processes;
mod signals;
mod topology;
mod traffic;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sightline_proto::flow::FlowFilter;
use sightline_proto::observer::GetFlowsRequest;
use sightline_proto::observer::observer_client::ObserverClient;
use tonic::transport::Channel;

pub use certs::Pki;
pub use processes::Process;
pub use signals::StopSignal;
pub(crate) use topology::DemoCluster;

use crate::observe_format::response_line;
use signals::Signals;

/// Where the relay listens, for the demo's own client and for `hubble --server`.
pub const RELAY_ADDRESS: &str = "127.0.0.1:4245";

/// What [`run`] starts and how long it runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `sightline-agent` binary to run on each node.
    pub agent: PathBuf,
    /// The `sightline-relay` binary to run on the host.
    pub relay: PathBuf,
    /// Print what was seen after `duration` and exit instead of following until Ctrl-C.
    pub once: bool,
    /// How long traffic runs before the flows are printed; used only with `once`.
    pub duration: Duration,
    /// Where the relay listens, e.g. [`RELAY_ADDRESS`].
    pub relay_address: String,
}

/// Why the demo stopped before it was done. Everything it created is removed either way.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Building the namespaces, veths or bridge failed.
    #[error(transparent)]
    Harness(#[from] crate::HarnessError),
    /// Anything else in setup (certificates, manifests, a process that exited), in words.
    #[error("{0}")]
    Setup(String),
    /// The relay answered GetFlows with an error.
    #[error("relay: {0}")]
    Relay(#[from] tonic::Status),
    /// The relay could not be reached.
    #[error("connecting to the relay: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The signal handlers could not be installed.
    #[error("installing the SIGINT and SIGTERM handlers: {0}")]
    Signals(std::io::Error),
    /// SIGINT or SIGTERM arrived during setup or before `once` was done.
    #[error("stopped by {0} before the demo was done; everything it created is removed")]
    Stopped(StopSignal),
}

/// Everything the demo creates. Dropping it removes all of it, whichever way `run`
/// ends: success, an error, a stop signal or a panic. Fields drop in declaration order:
/// the traffic (with node-b's firewall) first, then the processes, then the namespaces
/// and bridge they ran in, and last the work directory holding their logs and sockets.
#[derive(Default)]
struct Demo {
    traffic: Option<traffic::Traffic>,
    relay: Option<Process>,
    agents: Vec<Process>,
    cluster: Option<DemoCluster>,
    workdir: Option<WorkDir>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Every process is asked to stop before the first is waited for, so their
        // shutdowns overlap instead of adding up.
        for process in self.relay.iter_mut().chain(self.agents.iter_mut()) {
            process.terminate();
        }
    }
}

/// The directory for certificates, manifests, logs and the agents' sockets.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create() -> Result<Self, DemoError> {
        let dir = std::env::temp_dir().join(format!("sightline-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| DemoError::Setup(format!("{}: {e}", dir.display())))?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("demo: could not remove {}: {error}", self.0.display());
        }
    }
}

/// Builds everything, checking `stop` between steps so a signal does not wait for the
/// whole setup; on any early return the partly built `Demo` is dropped, removing it.
fn set_up(options: &DemoOptions, stop: &OnceLock<StopSignal>) -> Result<(Demo, Pki), DemoError> {
    let stopped = || match stop.get() {
        Some(&signal) => Err(DemoError::Stopped(signal)),
        None => Ok(()),
    };
    let mut demo = Demo::default();
    let workdir = demo.workdir.insert(WorkDir::create()?).0.clone();
    stopped()?;
    let cluster = demo.cluster.insert(DemoCluster::build()?);
    stopped()?;
    let pki = Pki::write(&workdir)?;
    let manifests = manifests::write(cluster, &workdir)?;
    stopped()?;
    demo.agents = cluster.start_agents(&options.agent, &pki, &workdir, &manifests)?;
    stopped()?;
    demo.relay = Some(cluster.start_relay(&options.relay, &pki, &workdir, &options.relay_address)?);
    stopped()?;
    demo.traffic = Some(traffic::Traffic::start(cluster)?);
    Ok((demo, pki))
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
///
/// SIGINT and SIGTERM stop the demo at any point. In follow mode that is the normal
/// end and returns `Ok`; during setup or with `once` it returns [`DemoError::Stopped`].
pub async fn run(options: DemoOptions) -> Result<(), DemoError> {
    // Before anything exists: from here on the signals no longer kill the process, so
    // every way out passes through the guards that remove what was created.
    let mut signals = Signals::install()?;
    let stop = Arc::new(OnceLock::new());
    // Setup blocks (commands, sleeps); on its own thread it leaves this task free to see
    // a signal and tell setup to give up.
    let mut setup = tokio::task::spawn_blocking({
        let (options, stop) = (options.clone(), stop.clone());
        move || set_up(&options, &stop)
    });
    let (demo, pki) = tokio::select! {
        biased;
        signal = signals.recv() => {
            let _ = stop.set(signal);
            eprintln!("demo: {signal} during setup; removing what was created");
            // Whatever setup built is removed when its result is dropped.
            drop(setup.await);
            return Err(DemoError::Stopped(signal));
        }
        joined = &mut setup => match joined {
            Ok(Ok(built)) => built,
            Ok(Err(error)) => {
                // A Ctrl-C in the terminal also reaches the `ip` and `nft` commands setup
                // runs, as they share the terminal's process group; a step that just
                // failed was then killed by that signal, which is what to report.
                if let Ok(signal) = tokio::time::timeout(Duration::from_millis(200), signals.recv()).await {
                    return Err(DemoError::Stopped(signal));
                }
                return Err(error);
            }
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(join) => return Err(DemoError::Setup(format!("setup did not finish: {join}"))),
        },
    };

    print_banner(&demo, &pki, &options);

    let result = tokio::select! {
        biased;
        signal = signals.recv() => {
            eprintln!("demo: {signal}; stopping");
            if options.once { Err(DemoError::Stopped(signal)) } else { Ok(()) }
        }
        result = observe(&options) => result,
    };
    eprintln!("demo: removing the processes, namespaces, bridge and files it created");
    drop(demo);
    result
}

fn print_banner(demo: &Demo, pki: &Pki, options: &DemoOptions) {
    let (Some(cluster), Some(workdir)) = (&demo.cluster, &demo.workdir) else {
        return;
    };
    println!("Sightline demo: nodes {}, pods:", cluster.node_names().join(", "));
    for pod in cluster.pods() {
        let name = manifests::meta(pod.name).map_or(pod.name.to_owned(), |m| format!("{}/{}", m.namespace, m.pod_name));
        println!("  {:<36} {:<16} on {}", name, pod.pod.ipv4, pod.node);
    }
    println!(
        "Relay on {} — from another shell: hubble observe --server {} --follow",
        options.relay_address, options.relay_address
    );
    println!("Agents, from another shell (mutual TLS with the demo's CA, or their unix sockets):");
    for node in cluster.nodes() {
        println!(
            "  {}: hubble observe --server {} --tls --tls-ca-cert-files {} --tls-client-cert-file {} --tls-client-key-file {} --tls-server-name {} --follow",
            node.name,
            node.agent_address(),
            pki.ca.display(),
            pki.client_cert.display(),
            pki.client_key.display(),
            certs::agent_server_name(node.name),
        );
        println!(
            "  {}: hubble observe --server unix://{} --follow",
            node.name,
            topology::agent_socket(&workdir.0, node.name).display()
        );
    }
    println!(
        "Hubble flow metrics of each agent (dns drop tcp flow port-distribution icmp httpV2), from another shell:"
    );
    for node in cluster.nodes() {
        println!("  {}: curl http://{}/metrics", node.name, node.metrics_address());
    }
    println!("Agent and relay logs: {}", workdir.0.display());
    println!();
}

/// Asks the relay for flows and prints them until done (`once`) or the stream ends.
async fn observe(options: &DemoOptions) -> Result<(), DemoError> {
    let mut client = relay_client(&options.relay_address).await?;
    let request = if options.once {
        tokio::time::sleep(options.duration).await;
        GetFlowsRequest {
            number: 200,
            blacklist: quiet(),
            ..Default::default()
        }
    } else {
        GetFlowsRequest {
            follow: true,
            blacklist: quiet(),
            ..Default::default()
        }
    };
    let mut stream = client.get_flows(request).await?.into_inner();
    while let Some(response) = stream.message().await? {
        if let Some(line) = response_line(&response) {
            println!("{line}");
        }
    }
    Ok(())
}

/// IPv6 neighbour discovery and MLD chatter of freshly created interfaces is real but
/// drowns the demo's traffic; leave it out the way a user would with `--not --protocol icmpv6`.
fn quiet() -> Vec<FlowFilter> {
    vec![FlowFilter {
        protocol: vec!["icmpv6".into()],
        ..Default::default()
    }]
}
