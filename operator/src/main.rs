use clap::Parser;

/// Sightline operator: configuration and TLS reconciled from custom resources.
#[derive(Debug, Parser)]
#[command(name = "sightline-operator", version)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("the operator is not built yet")
}
