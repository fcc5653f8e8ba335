use sightline_agent::app::{Agent, shutdown_channel};
use sightline_agent::cli::Args;
use sightline_agent::synthetic;

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

async fn run(args: Args) -> anyhow::Result<()> {
    let agent = Agent::start(&args).await?;
    let (stop, shutdown) = shutdown_channel();
    tracing::info!(node = %agent.node_name, tcp = ?agent.server.local_addr(), socket = ?args.socket_path(), "Hubble server listening");

    // The datapath plugs in here, taking the sink:
    //   let datapath = tokio::spawn(datapath::run(args.datapath, agent.node_name.clone(), agent.sink, shutdown.clone()));
    let source = tokio::spawn(synthetic::run(
        agent.sink,
        agent.node_name.clone(),
        args.synthetic_flows_per_second,
        shutdown.clone(),
    ));

    let server = tokio::spawn(agent.server.run(shutdown));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted?,
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    stop.send_replace(true);
    source.await?;
    server.await??;
    Ok(())
}
