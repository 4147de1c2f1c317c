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
//!
//! With `--changes-every N` (Confab only) publishers also edit and react (see
//! [`crate::changes`]); the `changed` frames members read then count as deliveries too,
//! reported apart from messages, and edits' latency apart from messages'.

use std::{
    sync::{
        Arc, LazyLock, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
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
    CommonArgs, account,
    changes::{self, Changer, Kind},
    client,
    pin::Placement,
    rawws::{self, Frame, Reader, Writer},
    report::{self, CpuMeter, Report},
    server::{Peer, ServerProcess},
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
/// Upper bound for signing a publisher up (an Argon2 hash on the server's one core, with
/// the other publishers' in the queue).
const SIGN_UP_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// The edit/reaction mix: after every N messages each publisher also edits its own
    /// last acknowledged message and adds or takes back a reaction (two changes per N
    /// messages). Publishers are then accounts (guests may not edit). Confab only.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub changes_every: Option<u64>,
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

    /// Something read at `now` that carries no send time: counted, no latency.
    pub(crate) fn count(&mut self, now: Instant) {
        if self.timeline.measured(now) {
            self.delivered += 1;
        }
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
    if args.changes_every.is_some() && args.common.peer != Peer::Confab {
        bail!(
            "--changes-every: the {} peer does not speak edits or reactions",
            args.common.peer.name()
        );
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
    if let Some(every) = args.changes_every {
        eprintln!("  and an edit and a reaction added or taken back per {every} messages");
    }

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
    let edit_latencies: Latencies = Arc::new(Mutex::new(report::latency_histogram()?));
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
                changes_every: args.changes_every,
                timeline,
            };
            let latencies = [latencies.clone(), edit_latencies.clone()];
            tokio::spawn(member(reader, writer, plan, latencies))
        })
        .collect();

    sleep_until(timeline.measure_from).await;
    let cpu = CpuMeter::start(server.pid())?;
    sleep_until(timeline.until).await;
    let cpu = cpu.finish()?;

    let mut delivered = Delivered::default();
    for (i, task) in tasks.into_iter().enumerate() {
        delivered.add(
            task.await
                .with_context(|| format!("member {i} crashed"))?
                .with_context(|| format!("member {i} failed"))?,
        );
    }
    let [latency, edit_latency] = [latencies, edit_latencies].map(|l| {
        Arc::into_inner(l).map(|l| l.into_inner().unwrap_or_else(PoisonError::into_inner))
    });
    let latency = latency.context("a member still holds the latencies")?;
    let edit_latency = edit_latency.context("a member still holds the latencies")?;
    let rss_kib = server.rss_kib()?;
    server.stop().await?;
    if delivered.messages == 0 {
        bail!("no message was delivered in the measured period");
    }
    if args.changes_every.is_some()
        && (delivered.edits == 0 || delivered.changes == delivered.edits)
    {
        bail!(
            "no edit or no reaction was delivered in the measured period ({} changes, {} of \
             them edits): raise the rate or lower --changes-every",
            delivered.changes,
            delivered.edits
        );
    }

    let secs = args.duration_secs as f64;
    let mut report = Report::new("fanout");
    report.meta("peer", args.common.peer.name());
    report.meta("duration_secs", args.duration_secs);
    report.meta("warmup_secs", args.warmup_secs);
    report.meta("body_bytes", BODY_BYTES);
    report.meta("changes_every", json!(args.changes_every));
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
    let per_sec = |n: u64| (n as f64 / secs).round() as u64;
    if let Some(every) = args.changes_every {
        report.column("changes every", every);
    }
    report.column("delivered/s", per_sec(delivered.total()));
    if args.changes_every.is_some() {
        report.column("msgs/s", per_sec(delivered.messages));
        report.column("changes/s", per_sec(delivered.changes));
        report.column("edits/s", per_sec(delivered.edits));
    }
    report.column(
        "published/s",
        (delivered.messages as f64 / secs / args.members as f64).round() as u64,
    );
    report.column("p50 ms", report::ms(latency.value_at_quantile(0.50)));
    report.column("p99 ms", report::ms(latency.value_at_quantile(0.99)));
    report.column("p99.9 ms", report::ms(latency.value_at_quantile(0.999)));
    report.column("max ms", report::ms(latency.max()));
    if args.changes_every.is_some() {
        report.column(
            "edit p50 ms",
            report::ms(edit_latency.value_at_quantile(0.50)),
        );
        report.column(
            "edit p99 ms",
            report::ms(edit_latency.value_at_quantile(0.99)),
        );
    }
    report.column("server RSS MiB", (rss_kib as f64 / 1024.0).round() as u64);
    cpu.columns(&mut report);
    Ok(report)
}

/// Connects every member, says hello and joins its room, a few dozen at a time. Member
/// `i` is in room `i % rooms` and publishes if `i < rooms × publishers`. With the
/// edit/reaction mix, publishers first sign up as accounts `fan-<i>`; the others stay
/// guests.
async fn set_up_members(
    server: &ServerProcess,
    args: &FanoutArgs,
    rooms: &[String],
) -> anyhow::Result<Vec<(usize, String, bool, Reader, Writer)>> {
    let total = args.rooms * args.members;
    let mut sockets = Vec::with_capacity(total);
    let addr = server.addr;
    let accounts = args.changes_every.is_some();
    let mut pending = futures_util::stream::iter((0..total).map(|i| {
        let room = rooms[i % args.rooms].clone();
        let publishes = i / args.rooms < args.publishers;
        let name = format!("fan-{i}");
        let setup = async move {
            let cookie = if publishes && accounts {
                let cookie = timeout(SIGN_UP_TIMEOUT, account::sign_up(addr, &name))
                    .await
                    .with_context(|| format!("signing {name} up took too long"))??;
                Some(cookie)
            } else {
                None
            };
            let (mut reader, mut writer) = rawws::connect(addr, cookie.as_deref()).await?;
            writer.text(
                &ClientMsg::Hello {
                    protocol: PROTOCOL_VERSION,
                    // An account's name is its own; a guest's is this.
                    name: cookie.is_none().then_some(name),
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
        let limit = if publishes && accounts {
            SIGN_UP_TIMEOUT + SETUP_TIMEOUT
        } else {
            SETUP_TIMEOUT
        };
        async move {
            timeout(limit, setup)
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
#[derive(Debug, Clone)]
struct Plan {
    id: usize,
    room: String,
    publishes: bool,
    /// Fixed rate: time between two of this publisher's messages.
    interval: Option<Duration>,
    /// Publishers over all rooms; they are members `0..publishers`.
    publishers: usize,
    window: usize,
    changes_every: Option<u64>,
    timeline: Timeline,
}

/// What members read in the measured period.
#[derive(Debug, Default, Clone, Copy)]
struct Delivered {
    messages: u64,
    /// `changed` frames, edits included.
    changes: u64,
    edits: u64,
}

impl Delivered {
    fn add(&mut self, other: Delivered) {
        self.messages += other.messages;
        self.changes += other.changes;
        self.edits += other.edits;
    }

    fn total(&self) -> u64 {
        self.messages + self.changes
    }
}

/// Reads until the end of the run (publishing too, if it is a publisher); returns what
/// it read in the measured period. `latencies` are messages' and edits'.
async fn member(
    mut reader: Reader,
    writer: Writer,
    plan: Plan,
    latencies: [Latencies; 2],
) -> anyhow::Result<Delivered> {
    let window = Arc::new(Semaphore::new(plan.window));
    // The publisher's last acknowledged message, for the edit/reaction mix to change.
    let last_acked =
        (plan.publishes && plan.changes_every.is_some()).then(|| Arc::new(AtomicU64::new(0)));
    let publisher = if plan.publishes {
        Some(tokio::spawn(publish(
            writer,
            plan.clone(),
            window.clone(),
            last_acked.clone(),
        )))
    } else {
        // A member that never writes must still answer the server's pings.
        reader.answer_pings(writer);
        None
    };
    let own_prefix = format!("{} ", plan.id);
    let [latencies, edit_latencies] = latencies;
    let mut recorder = Recorder::new(latencies, plan.timeline);
    // Every change read; the latency of edits (reactions carry no send time).
    let mut changes = Recorder::new(edit_latencies, plan.timeline);
    let mut edits = 0;
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
            if text.starts_with(changes::CHANGED_PREFIX) {
                match changes::kind_of(text) {
                    Some(Kind::Edited) => {
                        let body = body_of(text).with_context(|| format!("no body in {text}"))?;
                        if plan.timeline.measured(now) {
                            edits += 1;
                        }
                        changes.read(body, now)?;
                    }
                    Some(_) => changes.count(now),
                    None => bail!("no kind in {text}"),
                }
            } else if let Some(last_acked) = &last_acked
                && text.starts_with(changes::ACK_PREFIX)
            {
                if let Some(seq) = changes::acked_message(text) {
                    last_acked.fetch_max(seq, Ordering::Relaxed);
                }
            } else if text.starts_with(r#"{"type":"error""#) {
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
    let delivered = Delivered {
        messages: recorder.finish(),
        changes: changes.finish(),
        edits,
    };
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
/// room (everything it allows in one write); with the edit/reaction mix, changes its
/// message `last_acked` every so many messages. Hands the writing half back rather than
/// dropping it: dropping it would end the connection while the member still reads.
async fn publish(
    mut writer: Writer,
    plan: Plan,
    window: Arc<Semaphore>,
    last_acked: Option<Arc<AtomicU64>>,
) -> anyhow::Result<Writer> {
    let Plan {
        id,
        room,
        interval,
        publishers,
        timeline,
        ..
    } = plan;
    let mut changer = plan.changes_every.map(Changer::new);
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
                client_id: format!("{}{n}", changes::MESSAGE_ID_PREFIX),
                reply_to: None,
                files: Vec::new(),
            };
            writer.text(&msg.to_json());
            if let (Some(changer), Some(last_acked)) = (&mut changer, &last_acked) {
                let target = last_acked.load(Ordering::Relaxed);
                for change in changer.after_message(n, target, &room, body(id, stamp)) {
                    writer.text(&change.to_json());
                }
            }
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
