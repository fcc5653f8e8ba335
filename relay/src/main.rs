#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use sightline_common::{edge, shutdown};
use sightline_relay::app;
use sightline_relay::config::Args;

/// glibc's allocator, and far more the static musl binary's in the release image,
/// spent a tenth and more of the relay's CPU freeing the buffers of per-flow frames
/// from Hubble's Go agents (docs/relay.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::load(std::env::args_os().collect()).unwrap_or_else(|error| edge::exit_usage(&error));
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
    let relay = app::start(args).await?;
    let signal = stop.await;
    tracing::info!(%signal, "shutting down");
    relay.shutdown().await;
    Ok(())
}
