//! `bash scripts/demo` runs this as root: a two-node Sightline cluster in network
//! namespaces, with flows printed as they come through the relay.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sightline_e2e::demo::{self, DemoError, DemoOptions};

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

fn preflight(args: &Args) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the demo creates network namespaces and loads eBPF programs: run it as root".into());
    }
    for binary in [&args.agent, &args.relay] {
        if !binary.exists() {
            return Err(format!(
                "{} not found: build it first (scripts/demo does)",
                binary.display()
            ));
        }
    }
    Ok(())
}

/// 0 when the demo ran (in follow mode, until Ctrl-C or SIGTERM); 128 + the signal's
/// number when one cut it short, as a shell reports for a process the signal ended.
#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(message) = preflight(&args) {
        eprintln!("sightline-demo: {message}");
        return ExitCode::FAILURE;
    }
    let options = DemoOptions {
        agent: args.agent,
        relay: args.relay,
        once: args.once,
        duration: args.duration,
        relay_address: args.relay_address,
    };
    match demo::run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sightline-demo: {error}");
            match error {
                DemoError::Stopped(signal) => ExitCode::from(signal.exit_status()),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
