//! `confab-bench`: load scenarios against a real `confab-server` process.
//!
//! Each scenario is a subcommand. The bench starts the server binary itself (fresh data
//! directory, a port of its own), pins the server and itself to different cores so
//! the two do not steal each other's time, runs the scenario, stops the server with
//! SIGTERM and prints one table row (and optionally JSON).
//!
//! The bench runs on a single-threaded runtime: it is pinned to one core anyway, and a
//! multi-threaded runtime on one core would only add hand-offs between its threads.

mod account;
mod changes;
mod chart;
mod client;
mod cluster;
mod durable;
mod fanout;
mod floor;
mod idle;
mod pin;
mod rawws;
mod report;
mod resumestorm;
mod roomstorm;
mod search;
mod server;
/// Throwaway PostgreSQL and Redis for the cluster scenario: the server tests' own
/// harness, shared rather than copied, so both start them alike.
#[path = "../../server/tests/common/services.rs"]
#[allow(dead_code)]
mod services;
mod storm;
mod suite;
mod timeline;

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "confab-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Scenario(Box<Scenario>),
    /// Not a scenario: draws the side-by-side figures of a `suite --json` file as an SVG
    /// bar chart (docs/bench-suite.svg), as `scripts/bench.sh` does after each suite.
    Chart(chart::ChartArgs),
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Acknowledged durable sends: N senders, each in its own room, each keeping up to
    /// `window` sends waiting for their ack. Measures acked msgs/s and send→ack latency.
    Durable(durable::DurableArgs),
    /// Fan-out: R rooms × M members, P of them publishing, at a fixed rate or as fast as
    /// the server delivers. Measures delivered msgs/s and end-to-end latency (the send
    /// time travels inside the message).
    Fanout(fanout::FanoutArgs),
    /// The floor: one thread on the server's core writes a frame to each of N sockets in
    /// turn, with no server at all. The least time a message can take to reach N
    /// subscribers from one core of this machine.
    Floor(floor::FloorArgs),
    /// Idle sockets: opens N joined, silent connections and reports the server's memory
    /// per socket and the connect rate.
    Idle(idle::IdleArgs),
    /// Connect storm: WebSocket handshakes (connect, hello, welcome, close) per second
    /// at rising concurrency, until the rate stops growing.
    Storm(storm::StormArgs),
    /// Room storm: N guests each create a public room while one person chats in
    /// #general. Measures the chatter's round trips, the server's CPU, and how soon it is
    /// idle after the storm's sockets close.
    Roomstorm(roomstorm::RoomStormArgs),
    /// Resume storm: thousands of clients resume a room at once (`join` with `after`)
    /// while a few others chat; the chatters' round trip before and during the wave.
    Resumestorm(resumestorm::ResumeStormArgs),
    /// Search over a room of a million messages: query latency by kind of query (common
    /// and rare words, a prefix, a phrase, filters) and the index's size on disk.
    Search(search::SearchArgs),
    /// Cluster: one room's members spread over 1, 2, 3 nodes sharing PostgreSQL and
    /// Redis. Delivered msgs/s at the maximum; same-node and cross-node latency, CPU per
    /// message of every node, Redis and PostgreSQL, and bytes through Redis at a fixed rate.
    Cluster(cluster::ClusterArgs),
    /// Every scenario against Confab, and fan-out and idle against the Node `ws` peer,
    /// in one run: the side-by-side table of docs/PERFORMANCE.md.
    Suite(suite::SuiteArgs),
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
    /// Which server to measure. The Node peer speaks only what the fan-out and idle
    /// scenarios need.
    #[arg(long, value_enum, default_value_t = server::Peer::Confab)]
    pub peer: server::Peer,
    /// Folder of the Node `ws` peer (its `server.js` and `node_modules`).
    #[arg(long, default_value = "bench/peers/node-ws")]
    pub node_peer_dir: PathBuf,
}

impl CommonArgs {
    /// How to start the server these arguments describe.
    pub fn launch(&self, placement: Option<pin::Placement>) -> server::Launch {
        server::Launch {
            peer: self.peer,
            bin: self.server_bin.clone(),
            node_peer_dir: self.node_peer_dir.clone(),
            core: placement.map(|p| p.server_core),
            durability: self.durability.clone(),
            extra_args: self.server_args.clone(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Scenario(scenario) => run(*scenario),
        Command::Chart(args) => chart::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confab-bench: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(scenario: Scenario) -> anyhow::Result<()> {
    let (common, pinned) = match &scenario {
        Scenario::Durable(args) => (args.common.clone(), !args.smoke),
        Scenario::Fanout(args) => (args.common.clone(), !args.smoke),
        Scenario::Floor(args) => (args.common.clone(), !args.smoke),
        Scenario::Idle(args) => (args.common.clone(), !args.smoke),
        Scenario::Storm(args) => (args.common.clone(), !args.smoke),
        Scenario::Roomstorm(args) => (args.common.clone(), !args.smoke),
        Scenario::Resumestorm(args) => (args.common.clone(), !args.smoke),
        Scenario::Search(args) => (args.common.clone(), !args.smoke),
        Scenario::Cluster(args) => (args.common.clone(), !args.smoke),
        Scenario::Suite(args) => (args.common.clone(), !args.smoke),
    };
    // Thousands of sockets: lift this process's file limit to what the system allows.
    // The server, started from here, inherits it.
    raise_file_limit()?;
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
    let reports = runtime.block_on(async {
        match scenario {
            Scenario::Durable(args) => durable::run(args, placement).await.map(|r| vec![r]),
            Scenario::Fanout(args) => fanout::run(args, placement).await.map(|r| vec![r]),
            Scenario::Floor(args) => floor::run(args, placement).await.map(|r| vec![r]),
            Scenario::Idle(args) => idle::run(args, placement).await.map(|r| vec![r]),
            Scenario::Storm(args) => storm::run(args, placement).await.map(|r| vec![r]),
            Scenario::Roomstorm(args) => roomstorm::run(args, placement).await.map(|r| vec![r]),
            Scenario::Resumestorm(args) => resumestorm::run(args, placement).await.map(|r| vec![r]),
            Scenario::Search(args) => search::run(args, placement).await.map(|r| vec![r]),
            Scenario::Cluster(args) => cluster::run(args, placement).await,
            Scenario::Suite(args) => suite::run(args, placement).await,
        }
    })?;
    if let [report] = reports.as_slice() {
        report.print_table();
    }
    if let Some(path) = &common.json {
        let json = match reports.as_slice() {
            [report] => report.to_json(),
            many => serde_json::Value::Array(many.iter().map(report::Report::to_json).collect()),
        };
        report::write_json(path, &json)?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}

fn raise_file_limit() -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("cannot read the file limit")?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("cannot raise the file limit")?;
    Ok(())
}
