//! `confab-bench`: load scenarios against a real `confab-server` process.
//!
//! Each scenario is a subcommand. The bench starts the server binary itself (fresh data
//! directory, a port of its own), pins the server and itself to different cores so
//! the two do not steal each other's time, runs the scenario, stops the server with
//! SIGTERM and prints one table row (and optionally JSON).
//!
//! The bench runs on a single-threaded runtime: it is pinned to one core anyway, and a
//! multi-threaded runtime on one core would only add hand-offs between its threads.

mod client;
mod durable;
mod pin;
mod report;
mod server;

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "confab-bench", about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Acknowledged durable sends: N senders, each in its own room, each keeping up to
    /// `window` sends waiting for their ack. Measures acked msgs/s and send→ack latency.
    Durable(durable::DurableArgs),
}

/// What every scenario shares: which server to start, where to pin, where to report.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// The server binary to start (build it with `cargo build --release -p confab-server`).
    #[arg(long, default_value = "target/release/confab-server")]
    pub server_bin: PathBuf,
    /// Core the server is pinned to (with `taskset -c`).
    #[arg(long, default_value_t = 0)]
    pub server_core: usize,
    /// Core the bench pins itself to.
    #[arg(long, default_value_t = 1)]
    pub bench_core: usize,
    /// The server's `--durability`: `process` or `power`.
    #[arg(long, default_value = "process")]
    pub durability: String,
    /// Another flag for the server, such as `--server-arg=--queue-capacity=4096`
    /// (repeat for more).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Also write the figures to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confab-bench: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (common, pinned) = match &cli.scenario {
        Scenario::Durable(args) => (args.common.clone(), !args.smoke),
    };
    let placement = if pinned {
        if common.server_core == common.bench_core {
            anyhow::bail!("--server-core and --bench-core must differ");
        }
        // Before the runtime exists, so every thread it starts inherits the mask.
        pin::current_process_to(common.bench_core)?;
        Some(pin::Placement {
            server_core: common.server_core,
            bench_core: common.bench_core,
        })
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        match cli.scenario {
            Scenario::Durable(args) => durable::run(args, placement).await,
        }
    })?;
    report.print_table();
    if let Some(path) = &common.json {
        report.write_json(path)?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}
