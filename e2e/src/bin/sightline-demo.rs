//! `bash scripts/demo` runs this as root: a two-node Sightline cluster in network
//! namespaces, with flows printed as they come through the relay.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sightline_e2e::demo::{self, DemoOptions};

#[derive(Debug, Parser)]
#[command(
    name = "sightline-demo",
    about = "Two simulated nodes, agents, the relay and real traffic; flows printed"
)]
struct Args {
    /// The sightline-agent binary.
    #[arg(long, default_value = "target/release/sightline-agent")]
    agent: PathBuf,
    /// The sightline-relay binary.
    #[arg(long, default_value = "target/release/sightline-relay")]
    relay: PathBuf,
    /// Print the flows seen during --duration and exit, instead of following until Ctrl-C.
    #[arg(long)]
    once: bool,
    /// How long traffic runs before the flows are printed with --once.
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Where the relay listens (and `hubble --server` connects).
    #[arg(long, default_value = demo::RELAY_ADDRESS)]
    relay_address: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("the demo creates network namespaces and loads eBPF programs: run it as root");
    }
    for binary in [&args.agent, &args.relay] {
        if !binary.exists() {
            anyhow::bail!("{} not found: build it first (scripts/demo does)", binary.display());
        }
    }
    demo::run(DemoOptions {
        agent: args.agent,
        relay: args.relay,
        once: args.once,
        duration: args.duration,
        relay_address: args.relay_address,
    })
    .await?;
    Ok(())
}
