//! Scenario `roomstorm`: many guests each creating a public room at once, while one
//! person chats in #general — issue 15's storm. A room change used to send every session
//! its whole room list, so N creations cost N × sessions × rooms and held up everyone's
//! messages behind them.
//!
//! A chatter in #general sends a message every `--chat-interval-ms` and measures each
//! one's round trip (send to its own copy coming back). Meanwhile `--sockets` guest
//! sockets connect (from many loopback addresses), say hello, create a room each (the
//! server stops at its room cap, 1,000 here as by default), and read whatever comes. When
//! every one has its answer they all close, and the scenario waits until the server uses
//! (almost) no CPU: the time that takes is the cost the storm leaves behind.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use confab_shared::ClientMsg;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::{
    sync::{Semaphore, watch},
    time::Instant,
};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    CommonArgs, client,
    pin::Placement,
    report::{self, CpuMeter, Report},
    server::{Peer, ServerProcess},
};

/// Sockets per loopback source address.
const PER_SOURCE_ADDRESS: usize = 500;
/// The server counts as idle once it uses less than this share of a core over
/// [`IDLE_WINDOW`].
const IDLE_SHARE: f64 = 0.02;
const IDLE_WINDOW: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Args)]
pub struct RoomStormArgs {
    /// Guest sockets that each create a public room.
    #[arg(long, default_value_t = 5_000)]
    pub sockets: usize,
    /// Sockets connecting at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Milliseconds between the chatter's messages.
    #[arg(long, default_value_t = 50)]
    pub chat_interval_ms: u64,
    /// The protocol version the clients announce: 4 measures a server from before room
    /// changes were sent as deltas (its answers are read either way).
    #[arg(long, default_value_t = confab_shared::PROTOCOL_VERSION)]
    pub protocol: u32,
    /// A seconds-long "does it work" run for CI: 200 sockets, no pinning.
    #[arg(long)]
    pub smoke: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(mut args: RoomStormArgs, placement: Option<Placement>) -> anyhow::Result<Report> {
    if args.smoke {
        args.sockets = 200;
    }
    if args.sockets == 0 || args.concurrency == 0 || args.chat_interval_ms == 0 {
        bail!("--sockets, --concurrency and --chat-interval-ms must be positive");
    }
    if args.common.peer != Peer::Confab {
        bail!("the roomstorm scenario runs against Confab only");
    }
    let mut launch = args.common.launch(placement);
    // The bench lifts the room cap; the storm is about the server's own cap.
    launch
        .extra_args
        .extend(["--max-rooms".into(), "1000".into()]);
    let server = ServerProcess::start(&launch).await?;
    eprintln!(
        "confab server pid {} on {}: {} guests create a room each while one chats every {} ms",
        server.pid(),
        server.addr,
        args.sockets,
        args.chat_interval_ms
    );
    let url = server.ws_url();
    let protocol = args.protocol;
    let (stop_tx, stop_rx) = watch::channel(false);
    let interval = Duration::from_millis(args.chat_interval_ms);
    // On a thread and runtime of its own: behind the storm's thousands of sockets in one
    // runtime's queue, the chatter would measure the bench's scheduling, not the server.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let chat = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let mut chatter = client::connect(&url).await?;
            hello(&mut chatter, "chatter", protocol).await?;
            client::send(
                &mut chatter,
                &ClientMsg::Join {
                    room: "general".into(),
                    after: None,
                },
            )
            .await?;
            until(&mut chatter, "joined", |m| m["type"] == "joined").await?;
            let _ = ready_tx.send(());
            chat(chatter, interval, stop_rx).await
        })
    });
    ready_rx
        .await
        .context("the chatter did not get into #general")?;

    let cpu = CpuMeter::start(server.pid())?;
    let started = Instant::now();
    let addr = server.addr;
    let (close_tx, close_rx) = watch::channel(false);
    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let connecting = Arc::new(Semaphore::new(args.concurrency));
    let sockets: Vec<_> = (0..args.sockets)
        .map(|i| {
            let mut close = close_rx.clone();
            let answers = answers_tx.clone();
            let connecting = Arc::clone(&connecting);
            tokio::spawn(async move {
                let permit = connecting.acquire_owned().await?;
                let from = client::source_address(i, PER_SOURCE_ADDRESS);
                let mut ws = client::connect_from(addr, from).await?;
                hello(&mut ws, &format!("rs{i}"), protocol).await?;
                let create = ClientMsg::CreateRoom {
                    room: format!("storm-{i}"),
                    private: false,
                };
                client::send(&mut ws, &create).await?;
                // Answered by our room (or a refusal at the cap); the rest is read and
                // dropped, as a browser would, until the socket is told to close.
                let mut permit = Some(permit);
                let mut frames = 0u64;
                loop {
                    tokio::select! {
                        frame = ws.next() => {
                            let Some(Ok(Message::Text(text))) = frame else { break };
                            frames += 1;
                            if permit.is_some() {
                                // `rooms_changed` now, `rooms` before protocol 5: either
                                // names the room in `created`.
                                let m: serde_json::Value = serde_json::from_str(text.as_str())?;
                                let created = if m["type"] == "error" {
                                    Some(false)
                                } else {
                                    m.get("created").map(|_| true)
                                };
                                if let Some(created) = created {
                                    permit = None;
                                    let _ = answers.send(created);
                                }
                            }
                        }
                        _ = close.changed() => break,
                    }
                }
                let _ = ws.close(None).await;
                anyhow::Ok(frames)
            })
        })
        .collect();
    drop(answers_tx);
    let mut created = 0usize;
    let mut refused = 0usize;
    while created + refused < args.sockets {
        match tokio::time::timeout(Duration::from_secs(120), answers.recv()).await {
            Ok(Some(true)) => created += 1,
            Ok(Some(false)) => refused += 1,
            Ok(None) => break,
            Err(_) => bail!("no answer to a room creation for 120 s"),
        }
    }
    let storm_secs = started.elapsed();
    // The last coalesced room-list update goes out within the interval.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = close_tx.send(true);
    let _ = stop_tx.send(true);
    let closed_at = Instant::now();
    let mut frames = 0u64;
    let mut failed = 0usize;
    for socket in sockets {
        match socket.await {
            Ok(Ok(n)) => frames += n,
            _ => failed += 1,
        }
    }
    let latency = chat
        .join()
        .map_err(|_| anyhow::anyhow!("the chatter crashed"))??;
    // Idle: a window in which the server used less than IDLE_SHARE of a core.
    let idle_after = loop {
        let before = server.cpu_time()?;
        tokio::time::sleep(IDLE_WINDOW).await;
        let used = server.cpu_time()?.saturating_sub(before);
        if used.as_secs_f64() < IDLE_WINDOW.as_secs_f64() * IDLE_SHARE {
            break closed_at.elapsed().saturating_sub(IDLE_WINDOW);
        }
        if closed_at.elapsed() > Duration::from_secs(120) {
            bail!("the server was still busy 120 s after the storm");
        }
    };
    let cpu = cpu.finish()?;
    let rss_kib = server.rss_kib()?;
    server.stop().await?;
    if latency.is_empty() {
        bail!("no chat message came back");
    }
    eprintln!(
        "  {created} rooms created, {refused} refused, {failed} sockets failed in {:.1} s; \
         {frames} frames to the storm's sockets; chatter {} round trips, p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms; server {:.2} CPU-s; idle {:.2} s after the sockets closed",
        storm_secs.as_secs_f64(),
        latency.len(),
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
        cpu.server.as_secs_f64(),
        idle_after.as_secs_f64(),
    );
    let mut report = Report::new("roomstorm");
    report.meta("sockets", args.sockets);
    report.meta("chat_interval_ms", args.chat_interval_ms);
    report.meta("storm_secs", storm_secs.as_secs_f64());
    report.meta("frames_to_storm_sockets", frames);
    report.pinning(placement);
    report.column("server", "confab");
    report.column("sockets", args.sockets);
    report.column("rooms created", created);
    report.column("refused", refused);
    report.column("round trips", latency.len());
    report.column("p50 ms", report::ms(latency.value_at_quantile(0.50)));
    report.column("p99 ms", report::ms(latency.value_at_quantile(0.99)));
    report.column("max ms", report::ms(latency.max()));
    report.column(
        "server CPU-s",
        (cpu.server.as_secs_f64() * 100.0).round() / 100.0,
    );
    report.column(
        "idle after s",
        (idle_after.as_secs_f64() * 100.0).round() / 100.0,
    );
    report.column("server RSS MiB", (rss_kib as f64 / 1024.0).round() as u64);
    cpu.columns(&mut report);
    Ok(report)
}

async fn chat(
    mut ws: client::Ws,
    interval: Duration,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let mut latency = report::latency_histogram()?;
    let mut n = 0u64;
    let mut sent_at: Option<(String, Instant)> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = stop;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick(), if sent_at.is_none() => {
                let body = format!("ping {n}");
                n += 1;
                client::send(&mut ws, &ClientMsg::Send {
                    room: "general".into(),
                    body: body.clone(),
                    client_id: format!("c{n}"),
                    reply_to: None,
                    files: Vec::new(),
                }).await?;
                sent_at = Some((body, Instant::now()));
            }
            frame = ws.next() => {
                let frame = frame.context("the chatter's socket closed")?.context("the chatter's socket failed")?;
                let Message::Text(text) = frame else { continue };
                let m: serde_json::Value = serde_json::from_str(text.as_str())?;
                if m["type"] == "message"
                    && let Some((body, at)) = &sent_at
                    && m["body"] == body.as_str()
                {
                    latency.saturating_record(u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX));
                    sent_at = None;
                }
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(latency)
}

/// Says hello as `name` in protocol `protocol` and waits for the welcome.
async fn hello(ws: &mut client::Ws, name: &str, protocol: u32) -> anyhow::Result<()> {
    let hello = serde_json::json!({"type": "hello", "protocol": protocol, "name": name});
    ws.send(Message::text(hello.to_string()))
        .await
        .context("cannot send to the server")?;
    until(ws, "welcome", |m| m["type"] == "welcome").await
}

/// Reads frames until `pick` accepts one; an `error` frame fails.
async fn until(
    ws: &mut client::Ws,
    what: &str,
    pick: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<()> {
    let wait = async {
        loop {
            let frame = ws
                .next()
                .await
                .with_context(|| format!("closed while waiting for {what}"))?
                .with_context(|| format!("failed while waiting for {what}"))?;
            let Message::Text(text) = frame else { continue };
            let m: serde_json::Value = serde_json::from_str(text.as_str())?;
            if m["type"] == "error" {
                bail!("refused while waiting for {what}: {text}");
            }
            if pick(&m) {
                return Ok(());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .with_context(|| format!("timed out waiting for {what}"))?
}
