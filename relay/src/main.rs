use clap::Parser;

/// Sightline relay: one cluster-wide Hubble API in front of every agent.
#[derive(Debug, Parser)]
#[command(name = "sightline-relay", version)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("the relay is not built yet (issue #5)")
}
