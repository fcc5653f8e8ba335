use clap::Parser;

/// Sightline node agent: captures flows with eBPF and serves the Hubble API.
#[derive(Debug, Parser)]
#[command(name = "sightline-agent", version)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("the agent's datapath and observer server are not built yet (issues #3 and #4)")
}
