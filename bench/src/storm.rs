//! Scenario `storm`: how many new chat sessions per second the server admits — what a
//! restart of a busy server, or a reconnect wave after a network blip, asks of it.
//!
//! At each concurrency level, that many loops each open a TCP connection, do the
//! WebSocket upgrade, say `hello`, wait for `welcome`, close, and start again, for
//! `--secs-per-level`. Levels rise until the rate grows by less than 5 % from one to
//! the next (saturation) or the list ends. Connections come from many loopback source
//! addresses so TIME_WAIT and ephemeral ports do not limit the run.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use tokio::time::Instant;

use crate::{
    CommonArgs, client,
    pin::Placement,
    report::{self, CpuMeter, Report},
    server::{Peer, ServerProcess},
};

/// Connections per loopback source address before moving to the next.
const PER_SOURCE_ADDRESS: usize = 1_000;

#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    /// Concurrency levels to try, in order (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16, 64, 256])]
    pub levels: Vec<usize>,
    /// Seconds at each level.
    #[arg(long, default_value_t = 3)]
    pub secs_per_level: u64,
    /// A seconds-long "does it work" run for CI: levels 1 and 4, 1 s each, no pinning.
    #[arg(long)]
    pub smoke: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// One level's outcome.
struct Level {
    concurrency: usize,
    sessions: u64,
    per_sec: f64,
    latency: hdrhistogram::Histogram<u64>,
    cpu: report::CpuUse,
}

pub async fn run(mut args: StormArgs, placement: Option<Placement>) -> anyhow::Result<Report> {
    if args.smoke {
        args.levels = vec![1, 4];
        args.secs_per_level = 1;
    }
    if args.levels.is_empty() || args.levels.contains(&0) || args.secs_per_level == 0 {
        bail!("--levels must be positive and --secs-per-level at least 1");
    }
    if args.common.peer != Peer::Confab {
        bail!("the storm scenario runs against Confab only");
    }
    let server = ServerProcess::start(&args.common.launch(placement)).await?;
    eprintln!(
        "confab server pid {} on {}: handshake storm at concurrency {:?}, {} s each",
        server.pid(),
        server.addr,
        args.levels,
        args.secs_per_level
    );
    let mut levels: Vec<Level> = Vec::new();
    let mut next_source = 0;
    for &concurrency in &args.levels {
        let level = storm(&server, concurrency, args.secs_per_level, &mut next_source).await?;
        eprintln!(
            "  concurrency {:>4}: {:>7.0} sessions/s, p50 {:.2} ms, p99 {:.2} ms, server CPU {}%",
            concurrency,
            level.per_sec,
            level.latency.value_at_quantile(0.5) as f64 / 1000.0,
            level.latency.value_at_quantile(0.99) as f64 / 1000.0,
            report::cpu_percent(level.cpu.server, level.cpu.wall),
        );
        let saturated = levels
            .last()
            .is_some_and(|prev| level.per_sec < prev.per_sec * 1.05);
        levels.push(level);
        if saturated {
            break;
        }
    }
    let rss_kib = server.rss_kib()?;
    server.stop().await?;

    let best = levels
        .iter()
        .max_by(|a, b| a.per_sec.total_cmp(&b.per_sec))
        .context("no level ran")?;
    if best.sessions == 0 {
        bail!("no session was opened");
    }
    let mut report = Report::new("storm");
    report.meta("secs_per_level", args.secs_per_level);
    report.meta(
        "levels",
        levels
            .iter()
            .map(|l| {
                json!({
                    "concurrency": l.concurrency,
                    "sessions_per_sec": l.per_sec.round(),
                    "p50_ms": report::ms(l.latency.value_at_quantile(0.5)),
                    "p99_ms": report::ms(l.latency.value_at_quantile(0.99)),
                })
            })
            .collect::<Vec<_>>(),
    );
    report.pinning(placement);
    report.column("server", "confab");
    report.column("best concurrency", best.concurrency);
    report.column("sessions/s", best.per_sec.round() as u64);
    report.column("p50 ms", report::ms(best.latency.value_at_quantile(0.50)));
    report.column("p99 ms", report::ms(best.latency.value_at_quantile(0.99)));
    report.column("server RSS MiB", (rss_kib as f64 / 1024.0).round() as u64);
    best.cpu.columns(&mut report);
    Ok(report)
}

async fn storm(
    server: &ServerProcess,
    concurrency: usize,
    secs: u64,
    next_source: &mut usize,
) -> anyhow::Result<Level> {
    let until = Instant::now() + Duration::from_secs(secs);
    let cpu = CpuMeter::start(server.pid())?;
    let started = Instant::now();
    let loops: Vec<_> = (0..concurrency)
        .map(|i| {
            let first_source = *next_source + i * PER_SOURCE_ADDRESS;
            let addr = server.addr;
            tokio::spawn(async move {
                let mut latency = report::latency_histogram()?;
                let mut n = 0;
                while Instant::now() < until {
                    let begun = Instant::now();
                    let from = client::source_address(first_source + n, PER_SOURCE_ADDRESS);
                    let mut ws = client::connect_from(addr, from).await?;
                    client::hello(&mut ws, &format!("storm-{i}-{n}")).await?;
                    latency.saturating_record(
                        u64::try_from(begun.elapsed().as_micros()).unwrap_or(u64::MAX),
                    );
                    // Not waiting for the server's answer to the close: the next session
                    // starts at once, as reconnecting clients do not wait either.
                    ws.close(None).await.context("cannot close")?;
                    n += 1;
                }
                anyhow::Ok((n, latency))
            })
        })
        .collect();
    let mut sessions = 0;
    let mut latency = report::latency_histogram()?;
    for task in loops {
        let (n, hist) = task.await.context("a storm loop crashed")??;
        sessions += n as u64;
        latency.add(&hist).context("cannot merge histograms")?;
    }
    *next_source += concurrency * PER_SOURCE_ADDRESS;
    let cpu = cpu.finish()?;
    Ok(Level {
        concurrency,
        sessions,
        per_sec: sessions as f64 / started.elapsed().as_secs_f64(),
        latency,
        cpu,
    })
}
