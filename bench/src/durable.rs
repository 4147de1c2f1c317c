//! Scenario `durable`: acknowledged durable sends.
//!
//! N senders, each on its own connection and in its own room, keep up to `window` sends
//! waiting for their `ack`. The server acks only after the message is committed to
//! SQLite, so acked msgs/s is the rate of durable sends, and send→ack latency is what a
//! client waits for "stored". Each sender reads its socket all the time (it also gets
//! its own `message` broadcasts, which it skips), so the server never waits on us.
//!
//! Timeline: every sender connects and joins first; then all start sending together.
//! Acks arriving during the warmup are not counted; those arriving in the measured
//! window are. At the end senders stop sending, wait for their outstanding acks and
//! close their sockets.

use std::{
    collections::HashMap,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Args;
use confab_shared::{ClientMsg, ServerMsg};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use hdrhistogram::Histogram;
use tokio::{
    sync::{Notify, Semaphore},
    time::{Instant, sleep_until, timeout},
};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    CommonArgs, client,
    client::Ws,
    pin::Placement,
    report::{self, Report},
    server::{Peer, ServerProcess},
    timeline::Timeline,
};

/// How long a sender waits for its last acks once it stops sending.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of every message body: a short chat line.
const BODY_BYTES: usize = 64;

#[derive(Debug, Args)]
pub struct DurableArgs {
    /// Concurrent senders (connections), each in a room of its own.
    #[arg(long, default_value_t = 50)]
    pub senders: usize,
    /// Most sends a sender keeps waiting for their ack. 50 × 8 = 400 in flight is
    /// the load of the issue's target (≥ 50,000 msgs/s, p99 < 20 ms); bigger windows
    /// trade latency for throughput (docs/PERFORMANCE.md, window sweep).
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Length of the measured period.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Sending before the measured period, not counted.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// A seconds-long "does it work" run for CI: 2 senders, 1 s, no warmup, no pinning.
    /// Like every run, fails (non-zero exit) on any error or if nothing is acknowledged.
    #[arg(long)]
    pub smoke: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What one sender saw.
struct SenderResult {
    acked: u64,
    /// Acks that arrived in the measured period, and their latencies in µs.
    measured: Histogram<u64>,
}

pub async fn run(mut args: DurableArgs, placement: Option<Placement>) -> anyhow::Result<Report> {
    if args.smoke {
        args.senders = 2;
        args.duration_secs = 1;
        args.warmup_secs = 0;
    }
    if args.senders == 0 || args.window == 0 || args.duration_secs == 0 {
        bail!("--senders, --window and --duration-secs must be at least 1");
    }
    if args.common.peer != Peer::Confab {
        bail!("the durable scenario measures Confab's store: only --peer confab");
    }
    let server = ServerProcess::start(&args.common.launch(placement)).await?;
    eprintln!(
        "server pid {} on {}, {} senders × window {}, warmup {} s, measuring {} s",
        server.pid(),
        server.addr,
        args.senders,
        args.window,
        args.warmup_secs,
        args.duration_secs
    );

    let url = server.ws_url();
    let mut sockets = Vec::with_capacity(args.senders);
    for i in 0..args.senders {
        let name = format!("bench-{i}");
        let ws = client::member_of_own_room(&url, &name, &name)
            .await
            .with_context(|| format!("sender {i} could not get ready"))?;
        sockets.push((name, ws));
    }

    let timeline = Timeline::from_now(args.warmup_secs, args.duration_secs);
    let body = format!("{:-<BODY_BYTES$}", "confab bench message ");
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|(room, ws)| tokio::spawn(sender(ws, room, body.clone(), args.window, timeline)))
        .collect();

    sleep_until(timeline.measure_from).await;
    let server_cpu_from = server.cpu_time()?;
    let bench_cpu_from = report::cpu_time_of("/proc/self/stat")?;
    let machine_from = report::machine_busy_time()?;
    sleep_until(timeline.until).await;
    let server_cpu = server.cpu_time()?.saturating_sub(server_cpu_from);
    let bench_cpu = report::cpu_time_of("/proc/self/stat")?.saturating_sub(bench_cpu_from);
    let other_cpu = report::machine_busy_time()?
        .saturating_sub(machine_from)
        .saturating_sub(server_cpu + bench_cpu);
    let measured_wall = Instant::now().duration_since(timeline.measure_from);

    let mut acked_total = 0;
    let mut latency = report::latency_histogram()?;
    for (i, task) in tasks.into_iter().enumerate() {
        let result = task
            .await
            .with_context(|| format!("sender {i} crashed"))?
            .with_context(|| format!("sender {i} failed"))?;
        acked_total += result.acked;
        latency
            .add(&result.measured)
            .context("cannot merge latency histograms")?;
    }
    let rss_kib = server.rss_kib()?;
    server.stop().await?;

    let acked = latency.len();
    if acked == 0 {
        bail!("no send was acknowledged in the measured period");
    }
    let window = Duration::from_secs(args.duration_secs);
    let mut report = Report::new("durable");
    report.meta("durability", args.common.durability.as_str());
    report.meta("duration_secs", args.duration_secs);
    report.meta("warmup_secs", args.warmup_secs);
    report.meta("body_bytes", BODY_BYTES);
    report.meta("server_args", args.common.server_args.clone());
    report.meta("acked_including_warmup", acked_total);
    report.pinning(placement);
    report.column("senders", args.senders);
    report.column("window", args.window);
    report.column("acked msgs", acked);
    report.column(
        "msgs/s",
        (acked as f64 / window.as_secs_f64()).round() as u64,
    );
    report.column("p50 ms", report::ms(latency.value_at_quantile(0.50)));
    report.column("p99 ms", report::ms(latency.value_at_quantile(0.99)));
    report.column("p99.9 ms", report::ms(latency.value_at_quantile(0.999)));
    report.column("max ms", report::ms(latency.max()));
    report.column("server RSS MiB", (rss_kib as f64 / 1024.0).round() as u64);
    report.column(
        "server CPU %",
        report::cpu_percent(server_cpu, measured_wall),
    );
    // Cost per message, which other load on the machine disturbs less than the rate.
    report.column(
        "server µs/msg",
        (acked > 0).then(|| (server_cpu.as_secs_f64() * 1e6 / acked as f64 * 10.0).round() / 10.0),
    );
    report.column("bench CPU %", report::cpu_percent(bench_cpu, measured_wall));
    // Anything well above zero here means other programs competed for the cores.
    report.column("other CPU %", report::cpu_percent(other_cpu, measured_wall));
    Ok(report)
}

/// Between a sender's two halves: what was sent and not yet acked, and the window.
struct Shared {
    /// Send time by message number (the number in the client id).
    pending: Mutex<HashMap<u64, Instant>>,
    /// One permit per send that may still be started. Closed when the reading half
    /// fails, which stops the writing half too.
    window: Semaphore,
    /// Signalled when `pending` becomes empty, for the drain at the end.
    drained: Notify,
    /// Set before the sender closes its socket: a close from the server before that is
    /// a failure.
    closing: AtomicBool,
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        // Nothing panics while holding the lock, and the map stays valid if it did.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn sender(
    ws: Ws,
    room: String,
    body: String,
    window: usize,
    timeline: Timeline,
) -> anyhow::Result<SenderResult> {
    let shared = Shared {
        pending: Mutex::new(HashMap::with_capacity(window)),
        window: Semaphore::new(window),
        drained: Notify::new(),
        closing: AtomicBool::new(false),
    };
    let (sink, stream) = ws.split();
    // The first to fail ends the other: a dead socket stops both halves.
    let ((), result) = tokio::try_join!(
        write_half(sink, &shared, &room, &body, timeline),
        read_half(stream, &shared, timeline),
    )?;
    Ok(result)
}

async fn write_half(
    mut sink: SplitSink<Ws, Message>,
    shared: &Shared,
    room: &str,
    body: &str,
    timeline: Timeline,
) -> anyhow::Result<()> {
    let mut last_id: u64 = 0;
    loop {
        let permit = tokio::select! {
            permit = shared.window.acquire() => permit,
            () = sleep_until(timeline.until) => break,
        };
        let Ok(permit) = permit else {
            bail!("the reading half stopped");
        };
        permit.forget();
        // Everything the window allows now goes out in one write, as a client with
        // many messages queued would send them.
        let mut batch: u64 = 1;
        while let Ok(permit) = shared.window.try_acquire() {
            permit.forget();
            batch += 1;
        }
        let now = Instant::now();
        if now >= timeline.until {
            break;
        }
        let first = last_id + 1;
        last_id += batch;
        shared
            .pending()
            .extend((first..=last_id).map(|id| (id, now)));
        for id in first..=last_id {
            let msg = ClientMsg::Send {
                room: room.to_owned(),
                body: body.to_owned(),
                client_id: format!("m{id}"),
                reply_to: None,
                files: Vec::new(),
            };
            sink.feed(Message::text(msg.to_json()))
                .await
                .context("cannot send")?;
        }
        sink.flush().await.context("cannot send")?;
    }
    let drain = async {
        loop {
            let left = shared.pending().len();
            if left == 0 {
                return Ok(());
            }
            if shared.window.is_closed() {
                bail!("the reading half stopped with {left} sends unacknowledged");
            }
            shared.drained.notified().await;
        }
    };
    timeout(DRAIN_TIMEOUT, drain).await.with_context(|| {
        format!(
            "{} sends still unacknowledged {} s after sending stopped",
            shared.pending().len(),
            DRAIN_TIMEOUT.as_secs()
        )
    })??;
    shared.closing.store(true, Ordering::SeqCst);
    sink.close().await.context("cannot close the socket")?;
    Ok(())
}

async fn read_half(
    stream: SplitStream<Ws>,
    shared: &Shared,
    timeline: Timeline,
) -> anyhow::Result<SenderResult> {
    let result = read_until_closed(stream, shared, timeline).await;
    if result.is_err() {
        shared.window.close();
        shared.drained.notify_one();
    }
    result
}

async fn read_until_closed(
    mut stream: SplitStream<Ws>,
    shared: &Shared,
    timeline: Timeline,
) -> anyhow::Result<SenderResult> {
    let mut result = SenderResult {
        acked: 0,
        measured: report::latency_histogram()?,
    };
    while let Some(frame) = stream.next().await {
        let text = match frame.context("connection failed")? {
            Message::Text(text) => text,
            Message::Close(frame) => {
                if !shared.closing.load(Ordering::SeqCst) {
                    bail!("the server closed the connection: {frame:?}");
                }
                break;
            }
            _ => continue,
        };
        // Our own broadcasts make up half the traffic and need no decoding. The prefix
        // is how the server encodes them (the tag comes first); anything else is decoded.
        if text.as_str().starts_with(r#"{"type":"message""#) {
            continue;
        }
        let msg: ServerMsg = serde_json::from_str(text.as_str())
            .with_context(|| format!("the server sent something unreadable: {text}"))?;
        match msg {
            ServerMsg::Ack { client_id, .. } => {
                let at = Instant::now();
                let id = client_id
                    .strip_prefix('m')
                    .and_then(|n| n.parse::<u64>().ok())
                    .with_context(|| format!("ack for a client id we never sent: {client_id}"))?;
                let sent = {
                    let mut pending = shared.pending();
                    let sent = pending.remove(&id);
                    if pending.is_empty() {
                        shared.drained.notify_one();
                    }
                    sent
                }
                .with_context(|| format!("second ack for {client_id}"))?;
                shared.window.add_permits(1);
                result.acked += 1;
                if timeline.measured(at) {
                    let micros =
                        u64::try_from(at.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
                    result.measured.saturating_record(micros.max(1));
                }
            }
            ServerMsg::Error { .. } => bail!("the server refused: {text}"),
            _ => {}
        }
    }
    if !shared.closing.load(Ordering::SeqCst) {
        bail!("the connection ended before the run did");
    }
    Ok(result)
}
