//! Runs the datapath in the current network namespace and prints every event as JSON.
//! `cargo run -p sightline-agent --example datapath_print -- --interfaces 'veth*'`

use clap::Parser;
use sightline_agent::datapath::{self, DatapathArgs};
use sightline_agent::event::{Event, EventSink};

#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    datapath: DatapathArgs,
    #[arg(long, default_value = "example-node")]
    node_name: String,
}

struct Print;

impl EventSink for Print {
    fn publish(&mut self, event: Event) {
        match event {
            Event::Flow(flow) => match serde_json::to_string(&flow.to_flow()) {
                Ok(json) => println!("{json}"),
                Err(error) => eprintln!("unprintable flow: {error}"),
            },
            other => println!("{other:?}"),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    datapath::run(args.datapath, args.node_name, &mut Print, shutdown).await?;
    Ok(())
}
