use sightline_agent::app::{Agent, shutdown_channel};
use sightline_agent::cli::Args;
use sightline_agent::{datapath, synthetic};
use tokio::sync::watch;

fn main() -> anyhow::Result<()> {
    let args = Args::load().unwrap_or_else(|e| match e {
        sightline_agent::cli::CliError::Clap(clap) => clap.exit(),
        other => {
            eprintln!("sightline-agent: {other}");
            std::process::exit(2)
        }
    });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn run(args: Args) -> anyhow::Result<()> {
    let agent = Agent::start(&args).await?;
    let (stop, shutdown) = shutdown_channel();
    tracing::info!(node = %agent.node_name, tcp = ?agent.server.local_addr(), socket = ?args.socket_path(), "Hubble server listening");

    // The ring has one writer: either the eBPF datapath or, for development without
    // privileges, the synthetic source.
    // `agent.k8s` stays alive until the end of `run`: dropping it stops the watchers.
    let mut sink = Agent::pipeline(agent.metrics.wrap(agent.sink), agent.k8s.as_ref());
    let node_name = agent.node_name.clone();
    let mut source = if args.synthetic_flows_per_second > 0 {
        let (rate, shutdown) = (args.synthetic_flows_per_second, shutdown.clone());
        tokio::spawn(async move {
            synthetic::run(sink, node_name, rate, shutdown).await;
            Ok(())
        })
    } else {
        let (settings, shutdown) = (args.datapath.clone(), shutdown.clone());
        tokio::spawn(async move { datapath::run(settings, node_name, &mut sink, stopped(shutdown)).await })
    };

    let mut server = tokio::spawn(agent.server.run(shutdown));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let failure: Option<anyhow::Error> = tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.err().map(Into::into),
        _ = terminate.recv() => None,
        ended = &mut source => Some(match ended {
            Ok(Ok(())) => anyhow::anyhow!("the event source stopped unexpectedly"),
            Ok(Err(err)) => anyhow::Error::new(err).context("datapath"),
            Err(join) => join.into(),
        }),
        ended = &mut server => Some(match ended {
            Ok(Ok(())) => anyhow::anyhow!("the server stopped unexpectedly"),
            Ok(Err(err)) => err.into(),
            Err(join) => join.into(),
        }),
    };
    tracing::info!("shutting down");
    stop.send_replace(true);
    if !source.is_finished() {
        source.await??;
    }
    if !server.is_finished() {
        server.await??;
    }
    failure.map_or(Ok(()), Err)
}
