// The agent's unsafe code all lives in the library; the binary needs none.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use sightline_agent::app::RunningAgent;
use sightline_agent::cli::Args;
use sightline_common::{edge, shutdown};

fn main() -> ExitCode {
    let args = Args::load().unwrap_or_else(|error| edge::exit_usage(&error));
    if let Err(error) = args.log.init() {
        edge::exit_usage(&error);
    }
    edge::report(run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    // Installed before anything slow starts, so a SIGTERM during start-up is not lost.
    let stop = shutdown::stop_signal().context("installing signal handlers")?;
    let mut agent = RunningAgent::start(&args).await?;
    tracing::info!(node = %agent.node_name, tcp = ?agent.tcp_address, socket = ?args.socket_path(), "Hubble server listening");
    tokio::select! {
        signal = stop => {
            tracing::info!(%signal, "shutting down");
            Ok(agent.shutdown().await?)
        }
        failure = agent.failed() => {
            tracing::error!(%failure, "shutting down");
            // The failure is what the user needs to read; a second error while
            // stopping the rest only goes to the log.
            if let Err(error) = agent.shutdown().await {
                tracing::warn!(%error, "while shutting down");
            }
            Err(failure.into())
        }
    }
}
