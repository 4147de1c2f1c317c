//! Scenario `idle`: N connections that said hello, joined a room and then stay silent,
//! as most of a chat server's sockets are most of the time. Reports what each costs the
//! server in memory, and how fast they were opened.
//!
//! Memory per socket = (server RSS with N sockets − RSS before the first) ÷ N, read from
//! `/proc/PID/status` after the sockets have settled. Sockets are spread over rooms of
//! `--room-size` (a room per socket would be unlike a chat, one room of 15,000 would
//! make the setup a presence storm) and over loopback source addresses 127.0.0.x, so
//! ephemeral ports never run out. The machine allows 20,000 files per process, so the
//! bench holds at most that many sockets.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures_util::StreamExt;
use tokio::{task::JoinSet, time::Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    CommonArgs, client,
    pin::Placement,
    report::{CpuMeter, Report},
    server::ServerProcess,
};

/// Sockets opened at once.
const SETUP_CONCURRENCY: usize = 64;
/// Sockets per loopback source address.
const PER_SOURCE_ADDRESS: usize = 10_000;
/// Time for the server to finish what the last joins started (presence, buffers)
/// before memory is read.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Idle sockets to open.
    #[arg(long, default_value_t = 15_000)]
    pub sockets: usize,
    /// Sockets per room.
    #[arg(long, default_value_t = 100)]
    pub room_size: usize,
    /// A seconds-long "does it work" run for CI: 200 sockets, no pinning.
    #[arg(long)]
    pub smoke: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(mut args: IdleArgs, placement: Option<Placement>) -> anyhow::Result<Report> {
    if args.smoke {
        args.sockets = args.sockets.min(200);
    }
    if args.sockets == 0 || args.room_size == 0 {
        bail!("--sockets and --room-size must be at least 1");
    }
    let server = ServerProcess::start(&args.common.launch(placement)).await?;
    let rooms: Vec<String> = (0..args.sockets.div_ceil(args.room_size))
        .map(|r| format!("idle-{r}"))
        .collect();
    eprintln!(
        "{} server pid {} on {}: {} idle sockets in {} rooms",
        args.common.peer.name(),
        server.pid(),
        server.addr,
        args.sockets,
        rooms.len()
    );
    let mut admin = client::connect(&server.ws_url()).await?;
    client::hello(&mut admin, "bench-admin").await?;
    client::create_rooms(&mut admin, &rooms).await?;
    drop(admin);
    tokio::time::sleep(SETTLE).await;
    let rss_before = server.rss_kib()?;

    let cpu = CpuMeter::start(server.pid())?;
    let started = Instant::now();
    let addr = server.addr;
    let room_size = args.room_size;
    let mut opening = futures_util::stream::iter((0..args.sockets).map(|i| {
        let room = format!("idle-{}", i / room_size);
        async move {
            let mut ws = client::connect_from(addr, client::source_address(i, PER_SOURCE_ADDRESS))
                .await
                .with_context(|| format!("socket {i}"))?;
            client::hello(&mut ws, &format!("idle-{i}")).await?;
            client::join(&mut ws, &room).await?;
            anyhow::Ok(ws)
        }
    }))
    .buffer_unordered(SETUP_CONCURRENCY);
    // Each socket goes on being read (presence of later joiners, the server's pings) so
    // the server never sees a slow consumer or a silent peer; it sends nothing.
    let mut held = JoinSet::<Result<(), String>>::new();
    while let Some(ws) = opening.next().await {
        let mut ws = ws.context("an idle socket could not be opened")?;
        held.spawn(async move {
            while let Some(frame) = ws.next().await {
                match frame {
                    Ok(Message::Close(frame)) => return Err(format!("closed: {frame:?}")),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            Err("the connection ended".to_owned())
        });
    }
    let connect_time = started.elapsed();
    let cpu = cpu.finish()?;
    tokio::time::sleep(SETTLE).await;
    // A socket the server dropped would make the memory figure a lie.
    if let Some(ended) = held.try_join_next() {
        let why = ended.context("an idle socket's task crashed")?;
        bail!("an idle socket ended while the run held it: {why:?}");
    }
    let rss_after = server.rss_kib()?;
    held.abort_all();
    while held.join_next().await.is_some() {}
    server.stop().await?;

    let per_socket_kib = rss_after.saturating_sub(rss_before) as f64 / args.sockets as f64;
    let mut report = Report::new("idle");
    report.meta("peer", args.common.peer.name());
    report.meta("rss_before_kib", rss_before);
    report.meta("rss_after_kib", rss_after);
    report.pinning(placement);
    report.column("server", args.common.peer.name());
    report.column("sockets", args.sockets);
    report.column("rooms", rooms.len());
    report.column(
        "connects/s",
        (args.sockets as f64 / connect_time.as_secs_f64()).round() as u64,
    );
    report.column("RSS before MiB", round1(rss_before as f64 / 1024.0));
    report.column("RSS after MiB", round1(rss_after as f64 / 1024.0));
    report.column("KiB/socket", round1(per_socket_kib));
    // What 100,000 sockets would take at the same cost, on paper.
    report.column(
        "100k sockets MiB",
        round1((rss_before as f64 + per_socket_kib * 100_000.0) / 1024.0),
    );
    cpu.columns(&mut report);
    Ok(report)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
