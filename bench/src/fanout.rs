//! Scenario `fanout`: R rooms of M members each; in every room P of the members also
//! publish. Every message goes to all M members of its room (the publisher included), so
//! the server delivers P × M messages per round of publishing.
//!
//! The send time travels inside the message body (microseconds since the bench
//! started), so every member measures end-to-end latency — publisher's write to
//! member's read — for every delivery, with one clock.
//!
//! Two ways to publish:
//! - **at a fixed rate** (`--rate`, total messages per second over all publishers):
//!   latency at a known load. Publishers take turns, evenly spaced, so the server sees
//!   the rate asked for rather than one burst per period;
//! - **as fast as the server delivers** (no `--rate`): each publisher keeps at most
//!   `--window` messages whose own copy has not come back to it yet. Its copy travels
//!   through the same broadcast as everyone else's, so publishers slow down exactly as
//!   much as the fan-out does, and the server's queues stay short.
//!
//! Delivered msgs/s counts `message` frames read by all members in the measured
//! period. Works against Confab and the Node `ws` peer alike: both speak the protocol's
//! `hello`, `create_room`, `join` and `send`.

use std::{
    sync::{Arc, LazyLock, Mutex, PoisonError},
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Args;
use confab_shared::{ClientMsg, PROTOCOL_VERSION};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use memchr::memmem::Finder;
use serde_json::json;
use tokio::{
    sync::Semaphore,
    time::{Instant, MissedTickBehavior, sleep_until, timeout},
};

use crate::{
    CommonArgs, client,
    pin::Placement,
    rawws::{self, Frame, Reader, Writer},
    report::{self, CpuMeter, Report},
    server::ServerProcess,
    timeline::Timeline,
};

/// Bytes of every message body: a short chat line.
const BODY_BYTES: usize = 64;
/// How long members keep reading after publishing stops, so the last messages of the
/// measured period arrive (they are not counted, but must not be cut off mid-frame).
const DRAIN: Duration = Duration::from_millis(500);
/// Sockets set up at once.
const SETUP_CONCURRENCY: usize = 64;
/// Upper bound for setting up one member.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Rooms.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Members of each room (each its own connection).
    #[arg(long, default_value_t = 32)]
    pub members: usize,
    /// Members of each room that also publish.
    #[arg(long, default_value_t = 32)]
    pub publishers: usize,
    /// Messages published per second over all publishers. Without it, publishers go as
    /// fast as the server delivers.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Without `--rate`: messages a publisher may have on the way before its own copy
    /// comes back.
    #[arg(long, default_value_t = 4)]
    pub window: usize,
    /// Length of the measured period.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Publishing before the measured period, not counted.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// A seconds-long "does it work" run for CI: at most 4 members and 2 publishers per
    /// room, 1 s, no warmup, no pinning. Fails on any error or if nothing is delivered.
    #[arg(long)]
    pub smoke: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Latencies a reader keeps before adding them to the run's histogram.
const LATENCY_BATCH: usize = 512;

/// Every member's latencies, in one histogram. One per member (136 KiB each at this
/// precision) spread the bench's hot loop over a thousand histograms and made it miss
/// the cache on every frame; readers add a batch at a time, so the lock is rare.
pub(crate) type Latencies = Arc<Mutex<Histogram<u64>>>;

/// One reader's part of a run's figures: counts the messages it reads in the measured
/// period and records their latency into the shared histogram, a batch at a time.
pub(crate) struct Recorder {
    latencies: Latencies,
    timeline: Timeline,
    batch: Vec<u64>,
    delivered: u64,
}

impl Recorder {
    pub(crate) fn new(latencies: Latencies, timeline: Timeline) -> Self {
        Recorder {
            latencies,
            timeline,
            batch: Vec::with_capacity(LATENCY_BATCH),
            delivered: 0,
        }
    }

    /// A message whose body is `body`, read at `now`.
    pub(crate) fn read(&mut self, body: &str, now: Instant) -> anyhow::Result<()> {
        if !self.timeline.measured(now) {
            return Ok(());
        }
        self.delivered += 1;
        let sent = sent_micros(body).with_context(|| format!("no send time in {body}"))?;
        let at = micros_since(self.timeline.start, now);
        self.batch.push(at.saturating_sub(sent).max(1));
        if self.batch.len() == LATENCY_BATCH {
            self.flush();
        }
        Ok(())
    }

    /// Records what is left; returns the messages read in the measured period.
    pub(crate) fn finish(mut self) -> u64 {
        self.flush();
        self.delivered
    }

    fn flush(&mut self) {
        let mut histogram = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for &micros in &self.batch {
            histogram.saturating_record(micros);
        }
        self.batch.clear();
    }
}

pub async fn run(mut args: FanoutArgs, placement: Option<Placement>) -> anyhow::Result<Report> {
    if args.smoke {
        args.members = args.members.min(4);
        args.publishers = args.publishers.min(2);
        args.rooms = args.rooms.min(2);
        args.duration_secs = 1;
        args.warmup_secs = 0;
    }
    if args.rooms == 0 || args.members == 0 || args.duration_secs == 0 {
        bail!("--rooms, --members and --duration-secs must be at least 1");
    }
    if args.publishers == 0 || args.publishers > args.members {
        bail!("--publishers must be between 1 and --members");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number");
    }
    if args.rate.is_none() && args.window == 0 {
        bail!("--window must be at least 1");
    }
    let server = ServerProcess::start(&args.common.launch(placement)).await?;
    eprintln!(
        "{} server pid {} on {}: {} room(s) × {} members, {} publishing each, {}",
        args.common.peer.name(),
        server.pid(),
        server.addr,
        args.rooms,
        args.members,
        args.publishers,
        match args.rate {
            Some(rate) => format!("{rate} msgs/s in total"),
            None => format!("as fast as delivered (window {})", args.window),
        }
    );

    let rooms: Vec<String> = (0..args.rooms).map(|r| format!("fan-{r}")).collect();
    let mut admin = client::connect(&server.ws_url()).await?;
    client::hello(&mut admin, "bench-admin").await?;
    client::create_rooms(&mut admin, &rooms).await?;
    drop(admin);

    let sockets = set_up_members(&server, &args, &rooms).await?;
    let publishers_total = args.rooms * args.publishers;
    let interval = args
        .rate
        .map(|rate| Duration::from_secs_f64(publishers_total as f64 / rate));

    let timeline = Timeline::from_now(args.warmup_secs, args.duration_secs);
    let latencies: Latencies = Arc::new(Mutex::new(report::latency_histogram()?));
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|(id, room, publishes, reader, writer)| {
            let plan = Plan {
                id,
                room,
                publishes,
                interval,
                publishers: publishers_total,
                window: args.window,
                timeline,
            };
            tokio::spawn(member(reader, writer, plan, latencies.clone()))
        })
        .collect();

    sleep_until(timeline.measure_from).await;
    let cpu = CpuMeter::start(server.pid())?;
    sleep_until(timeline.until).await;
    let cpu = cpu.finish()?;

    let mut delivered = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        delivered += task
            .await
            .with_context(|| format!("member {i} crashed"))?
            .with_context(|| format!("member {i} failed"))?;
    }
    let latency = Arc::into_inner(latencies)
        .context("a member still holds the latencies")?
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let rss_kib = server.rss_kib()?;
    server.stop().await?;
    if delivered == 0 {
        bail!("no message was delivered in the measured period");
    }

    let secs = args.duration_secs as f64;
    let mut report = Report::new("fanout");
    report.meta("peer", args.common.peer.name());
    report.meta("duration_secs", args.duration_secs);
    report.meta("warmup_secs", args.warmup_secs);
    report.meta("body_bytes", BODY_BYTES);
    report.meta("server_args", args.common.server_args.clone());
    report.pinning(placement);
    report.column("server", args.common.peer.name());
    report.column("rooms", args.rooms);
    report.column("members", args.members);
    report.column("publishers", args.publishers);
    report.column(
        "rate",
        match args.rate {
            Some(rate) => json!(rate),
            None => json!(format!("max/w{}", args.window)),
        },
    );
    report.column("delivered/s", (delivered as f64 / secs).round() as u64);
    report.column(
        "published/s",
        (delivered as f64 / secs / args.members as f64).round() as u64,
    );
    report.column("p50 ms", report::ms(latency.value_at_quantile(0.50)));
    report.column("p99 ms", report::ms(latency.value_at_quantile(0.99)));
    report.column("p99.9 ms", report::ms(latency.value_at_quantile(0.999)));
    report.column("max ms", report::ms(latency.max()));
    report.column("server RSS MiB", (rss_kib as f64 / 1024.0).round() as u64);
    cpu.columns(&mut report);
    Ok(report)
}

/// Connects every member, says hello and joins its room, a few dozen at a time. Member
/// `i` is in room `i % rooms` and publishes if `i < rooms × publishers`.
async fn set_up_members(
    server: &ServerProcess,
    args: &FanoutArgs,
    rooms: &[String],
) -> anyhow::Result<Vec<(usize, String, bool, Reader, Writer)>> {
    let total = args.rooms * args.members;
    let mut sockets = Vec::with_capacity(total);
    let addr = server.addr;
    let mut pending = futures_util::stream::iter((0..total).map(|i| {
        let room = rooms[i % args.rooms].clone();
        let publishes = i / args.rooms < args.publishers;
        let setup = async move {
            let (mut reader, mut writer) = rawws::connect(addr).await?;
            writer.text(
                &ClientMsg::Hello {
                    protocol: PROTOCOL_VERSION,
                    name: Some(format!("fan-{i}")),
                }
                .to_json(),
            );
            writer.flush().await?;
            rawws::expect(&mut reader, "welcome", r#"{"type":"welcome""#).await?;
            writer.text(
                &ClientMsg::Join {
                    room: room.clone(),
                    after: None,
                }
                .to_json(),
            );
            writer.flush().await?;
            let joined = format!(r#"{{"type":"joined","room":"{room}""#);
            rawws::expect(&mut reader, "joined", &joined).await?;
            anyhow::Ok((i, room, publishes, reader, writer))
        };
        async move {
            timeout(SETUP_TIMEOUT, setup)
                .await
                .with_context(|| format!("member {i} was not ready in time"))?
        }
    }))
    .buffer_unordered(SETUP_CONCURRENCY);
    while let Some(member) = pending.next().await {
        sockets.push(member.context("a member could not get ready")?);
    }
    Ok(sockets)
}

/// What one member does.
struct Plan {
    id: usize,
    room: String,
    publishes: bool,
    /// Fixed rate: time between two of this publisher's messages.
    interval: Option<Duration>,
    /// Publishers over all rooms; they are members `0..publishers`.
    publishers: usize,
    window: usize,
    timeline: Timeline,
}

/// Reads until the end of the run (publishing too, if it is a publisher); returns how
/// many messages it read in the measured period.
async fn member(
    mut reader: Reader,
    writer: Writer,
    plan: Plan,
    latencies: Latencies,
) -> anyhow::Result<u64> {
    let window = Arc::new(Semaphore::new(plan.window));
    let publisher = if plan.publishes {
        Some(tokio::spawn(publish(
            writer,
            plan.room.clone(),
            plan.id,
            plan.interval,
            plan.publishers,
            window.clone(),
            plan.timeline,
        )))
    } else {
        // A member that never writes must still answer the server's pings.
        reader.answer_pings(writer);
        None
    };
    let own_prefix = format!("{} ", plan.id);
    let mut recorder = Recorder::new(latencies, plan.timeline);
    // One timer for the whole run: a timeout around every read would register and
    // cancel a timer per frame.
    let deadline = sleep_until(plan.timeline.until + DRAIN);
    tokio::pin!(deadline);
    loop {
        let (now, text) = tokio::select! {
            biased;
            () = &mut deadline => break,
            frame = reader.next_at() => match frame? {
                (now, Frame::Text(text)) => (now, text),
                (_, Frame::Close(code)) => bail!("the server closed the connection ({code:?})"),
                (_, Frame::Other) => continue,
            },
        };
        if !text.starts_with(r#"{"type":"message""#) {
            if text.starts_with(r#"{"type":"error""#) {
                bail!("the server refused: {text}");
            }
            continue;
        }
        let body = body_of(text).with_context(|| format!("no body in {text}"))?;
        if plan.publishes && body.starts_with(&own_prefix) {
            window.add_permits(1);
        }
        recorder.read(body, now)?;
    }
    let delivered = recorder.finish();
    if let Some(publisher) = publisher {
        let writer = publisher
            .await
            .context("the publisher crashed")?
            .context("the publisher failed")?;
        drop(writer);
    }
    Ok(delivered)
}

/// Publishes until the end of the run: at a fixed interval, or whenever the window has
/// room (everything it allows in one write). Hands the writing half back rather than
/// dropping it: dropping it would end the connection while the member still reads.
async fn publish(
    mut writer: Writer,
    room: String,
    id: usize,
    interval: Option<Duration>,
    publishers: usize,
    window: Arc<Semaphore>,
    timeline: Timeline,
) -> anyhow::Result<Writer> {
    let mut n: u64 = 0;
    let mut ticker = interval.map(|every| {
        // Publishers take turns, evenly spaced: started together, all of them would send
        // at the same instant of every period, and the server would see bursts of one
        // message per publisher rather than the rate asked for.
        let turn = every.mul_f64(id as f64 / publishers as f64);
        let mut ticker = tokio::time::interval_at(timeline.start + turn, every);
        // Keep the rate: a late tick is made up at once rather than dropped.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        ticker
    });
    loop {
        let mut batch = 1;
        let ready = async {
            match &mut ticker {
                Some(ticker) => {
                    ticker.tick().await;
                }
                None => {
                    if let Ok(permit) = window.acquire().await {
                        permit.forget();
                    }
                    while let Ok(permit) = window.try_acquire() {
                        permit.forget();
                        batch += 1;
                    }
                }
            }
        };
        tokio::select! {
            () = ready => {}
            () = sleep_until(timeline.until) => break,
        }
        let now = Instant::now();
        if now >= timeline.until {
            break;
        }
        let stamp = micros_since(timeline.start, now);
        for _ in 0..batch {
            n += 1;
            let msg = ClientMsg::Send {
                room: room.clone(),
                body: body(id, stamp),
                client_id: format!("f{n}"),
                reply_to: None,
            };
            writer.text(&msg.to_json());
        }
        writer.flush().await?;
    }
    Ok(writer)
}

/// `"<publisher> <send time µs> ----…"`, padded to [`BODY_BYTES`].
pub(crate) fn body(publisher: usize, sent_micros: u64) -> String {
    format!("{:-<BODY_BYTES$}", format!("{publisher} {sent_micros} "))
}

pub(crate) fn sent_micros(body: &str) -> Option<u64> {
    let (_, rest) = body.split_once(' ')?;
    let (micros, _) = rest.split_once(' ')?;
    micros.parse().ok()
}

/// The body of an encoded `message` frame, without decoding the rest: members read
/// millions of frames, and the bench must not become the bottleneck it measures. Bodies
/// the bench writes need no JSON escaping.
pub(crate) fn body_of(frame: &str) -> Option<&str> {
    // Built once: `str::find` sets up a substring searcher on every call.
    static KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(r#""body":""#));
    let start = KEY.find(frame.as_bytes())? + KEY.needle().len();
    let len = memchr::memchr(b'"', &frame.as_bytes()[start..])?;
    // Both ends are at ASCII quotes, so they are character boundaries.
    frame.get(start..start + len)
}

fn micros_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.duration_since(epoch).as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_shared::{ChatMessage, ServerMsg};

    #[test]
    fn the_body_carries_publisher_and_send_time_through_a_real_frame() {
        let body = body(17, 123_456);
        assert_eq!(body.len(), BODY_BYTES);
        let frame = ServerMsg::Message(ChatMessage {
            id: 9,
            room: "fan-0".into(),
            seq: 3,
            from: "~fan-17".into(),
            name: "fan-17".into(),
            body: body.clone(),
            ts: 1,
            ..ChatMessage::default()
        })
        .to_json();
        assert!(frame.starts_with(r#"{"type":"message""#), "{frame}");
        let read = body_of(&frame).expect("body");
        assert_eq!(read, body);
        assert!(read.starts_with("17 "));
        assert_eq!(sent_micros(read), Some(123_456));
    }
}
