//! Scenario `floor`: what one core of this machine allows any server, measured without
//! a server.
//!
//! A thread pinned to the server's core sends messages at a fixed rate to N loopback
//! sockets: the very `message` frame Confab sends in the fan-out scenario, encoded once,
//! written to each socket in turn with blocking writes (everything due since the last
//! sweep in one write per socket), and nothing else. The bench reads them on its own
//! core exactly as the fan-out members do. No server does less per delivery than this
//! loop, so:
//! - the **sweep** (first write to last write) is the least time in which a message
//!   reaches N subscribers from one core here;
//! - the **end-to-end latency** (due time in the frame, read time at the member) is a
//!   lower bound for the fan-out scenario in a room of N at the same rate.
//!
//! On loopback the kernel runs the receiving side of TCP on the sending core as well,
//! so most of a write's cost is the kernel's, whichever server makes it.

use std::{
    io::Write,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Args;
use confab_shared::{ChatMessage, ServerMsg};
use hdrhistogram::Histogram;
use nix::sys::resource::{UsageWho, getrusage};
use tokio::{
    net::{TcpListener, TcpStream},
    time::sleep_until,
};

use crate::{
    CommonArgs,
    fanout::{self, Latencies, Recorder},
    pin::{self, Placement},
    rawws::{Frame, Reader},
    report::{self, Report},
    timeline::Timeline,
};

/// How long readers keep reading after the last round.
const DRAIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Args)]
pub struct FloorArgs {
    /// Sockets written in every round (the room's subscribers).
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    /// Messages per second: each socket receives this many frames a second.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Length of the measured period.
    #[arg(long, default_value_t = 5)]
    pub duration_secs: u64,
    /// Sending before the measured period, not counted.
    #[arg(long, default_value_t = 1)]
    pub warmup_secs: u64,
    /// A seconds-long "does it work" run for CI: 16 sockets, 1 s, no pinning.
    #[arg(long)]
    pub smoke: bool,
    /// Only `--server-core` (where the sender runs), `--bench-core` and `--json` apply:
    /// no server is started.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What the sending thread measured over the measured period.
struct Sent {
    /// Time from the first write of a sweep to the end of its last, in µs.
    sweeps: Histogram<u64>,
    writes: u64,
    /// The thread's CPU time.
    cpu: Duration,
    /// Handed back rather than closed, so readers see no end of stream before theirs.
    _sockets: Vec<std::net::TcpStream>,
}

pub async fn run(mut args: FloorArgs, placement: Option<Placement>) -> anyhow::Result<Report> {
    if args.smoke {
        args.sockets = args.sockets.min(16);
        args.duration_secs = 1;
        args.warmup_secs = 0;
    }
    if args.sockets == 0 || args.duration_secs == 0 {
        bail!("--sockets and --duration-secs must be at least 1");
    }
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a positive number");
    }
    let (senders, readers) = socket_pairs(args.sockets).await?;
    eprintln!(
        "floor: one thread on core {} writes to {} sockets, {} msgs/s",
        placement.map_or("any".to_owned(), |p| p.server_core.to_string()),
        args.sockets,
        args.rate
    );

    let timeline = Timeline::from_now(args.warmup_secs, args.duration_secs);
    let latencies: Latencies = Arc::new(Mutex::new(report::latency_histogram()?));
    let tasks: Vec<_> = readers
        .into_iter()
        .map(|(reader, write_half)| {
            tokio::spawn(read(reader, write_half, timeline, latencies.clone()))
        })
        .collect();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let core = placement.map(|p| p.server_core);
    let sender = std::thread::Builder::new()
        .name("floor-sender".into())
        .spawn(move || send_sweeps(senders, core, interval, timeline))
        .context("cannot start the sending thread")?;

    let mut delivered = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        delivered += task
            .await
            .with_context(|| format!("reader {i} crashed"))?
            .with_context(|| format!("reader {i} failed"))?;
    }
    let sent = tokio::task::spawn_blocking(move || sender.join())
        .await
        .context("cannot wait for the sending thread")?
        .map_err(|_| anyhow::anyhow!("the sending thread panicked"))??;
    if delivered == 0 || sent.writes == 0 {
        bail!("nothing was sent or read in the measured period");
    }
    let latency = Arc::into_inner(latencies)
        .context("a reader still holds the latencies")?
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);

    let secs = args.duration_secs as f64;
    let mut report = Report::new("floor");
    report.meta("duration_secs", args.duration_secs);
    report.meta("warmup_secs", args.warmup_secs);
    report.pinning(placement);
    report.column("server", "none (floor)");
    report.column("sockets", args.sockets);
    report.column("msgs/s", args.rate);
    report.column("delivered/s", (delivered as f64 / secs).round() as u64);
    report.column(
        "sweep p50 ms",
        report::ms(sent.sweeps.value_at_quantile(0.5)),
    );
    report.column("sweep max ms", report::ms(sent.sweeps.max()));
    report.column(
        "µs/write",
        (sent.cpu.as_secs_f64() * 1e6 / sent.writes as f64 * 100.0).round() / 100.0,
    );
    report.column(
        "sender CPU %",
        (sent.cpu.as_secs_f64() / secs * 100.0).round() as u64,
    );
    report.column("p50 ms", report::ms(latency.value_at_quantile(0.50)));
    report.column("p99 ms", report::ms(latency.value_at_quantile(0.99)));
    report.column("p99.9 ms", report::ms(latency.value_at_quantile(0.999)));
    report.column("max ms", report::ms(latency.max()));
    Ok(report)
}

/// `n` connected loopback pairs: the sending ends as blocking std sockets for the
/// sender thread, the reading ends for the bench's runtime (with their writing halves,
/// kept open so the sockets stay whole).
async fn socket_pairs(
    n: usize,
) -> anyhow::Result<(
    Vec<std::net::TcpStream>,
    Vec<(Reader, tokio::net::tcp::OwnedWriteHalf)>,
)> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on loopback")?;
    let addr = listener.local_addr().context("listener has no address")?;
    let mut senders = Vec::with_capacity(n);
    let mut readers = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let client = client.context("cannot connect on loopback")?;
        let (server_side, _) = accepted.context("cannot accept on loopback")?;
        // As Confab and a latency-minded client have it.
        client.set_nodelay(true).context("cannot set TCP_NODELAY")?;
        server_side
            .set_nodelay(true)
            .context("cannot set TCP_NODELAY")?;
        let server_side = server_side
            .into_std()
            .context("cannot take the socket out of the runtime")?;
        server_side
            .set_nonblocking(false)
            .context("cannot make the socket blocking")?;
        senders.push(server_side);
        let (read_half, write_half) = client.into_split();
        readers.push((Reader::without_upgrade(read_half), write_half));
    }
    Ok((senders, readers))
}

/// The sending thread. A message is due every `interval`; each sweep writes every
/// message that fell due since the last sweep to every socket, in one write per socket,
/// stamped with the time it fell due. At a low rate that is one frame per write; when
/// a sweep takes longer than the interval, the messages that fell due meanwhile go
/// together in the next one: the batching a server would do, with nothing else in the
/// way. Stamping the due time, not the sweep's, counts the wait for the next sweep.
fn send_sweeps(
    mut sockets: Vec<std::net::TcpStream>,
    core: Option<usize>,
    interval: Duration,
    timeline: Timeline,
) -> anyhow::Result<Sent> {
    if let Some(core) = core {
        pin::current_process_to(core)?;
    }
    let start = timeline.start.into_std();
    let measure_from = timeline.measure_from.into_std();
    let until = timeline.until.into_std();
    let mut sweeps = report::latency_histogram()?;
    let mut writes = 0;
    let mut cpu_from = None;
    // Messages `0..sent` have been written; message `k` falls due at start + k × interval.
    let mut sent: u32 = 0;
    let due = |k: u32| start + interval * k;
    let mut buf = Vec::new();
    loop {
        let mut now = std::time::Instant::now();
        if now >= until {
            break;
        }
        if due(sent) > now {
            std::thread::sleep(due(sent) - now);
            now = std::time::Instant::now();
        }
        buf.clear();
        while due(sent) <= now && due(sent) < until {
            let stamp = u64::try_from(due(sent).duration_since(start).as_micros()).unwrap_or(0);
            encode_frame(stamp, &mut buf);
            sent += 1;
        }
        if buf.is_empty() {
            continue;
        }
        let measured = now >= measure_from && now < until;
        if measured && cpu_from.is_none() {
            cpu_from = Some(thread_cpu()?);
        }
        for socket in &mut sockets {
            socket.write_all(&buf).context("cannot write to a reader")?;
        }
        if measured {
            let sweep = u64::try_from(now.elapsed().as_micros()).unwrap_or(u64::MAX);
            sweeps.saturating_record(sweep.max(1));
            writes += sockets.len() as u64;
        }
    }
    let cpu = match cpu_from {
        Some(from) => thread_cpu()?.saturating_sub(from),
        None => Duration::ZERO,
    };
    Ok(Sent {
        sweeps,
        writes,
        cpu,
        _sockets: sockets,
    })
}

/// Appends the `message` frame Confab would send for a fan-out message stamped `stamp`:
/// the same JSON, behind a server-to-client text frame header.
fn encode_frame(stamp: u64, out: &mut Vec<u8>) {
    let json = ServerMsg::Message(ChatMessage {
        id: 1,
        room: "fan-0".into(),
        seq: 1,
        from: "~fan-0".into(),
        name: "fan-0".into(),
        body: fanout::body(0, stamp),
        ts: 1,
        ..ChatMessage::default()
    })
    .to_json();
    out.push(0x81);
    match json.len() {
        n if n < 126 => out.push(n as u8),
        n => {
            out.push(126);
            out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        }
    }
    out.extend_from_slice(json.as_bytes());
}

fn thread_cpu() -> anyhow::Result<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_THREAD).context("cannot read the thread's CPU time")?;
    let time = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    Ok(time(usage.user_time()) + time(usage.system_time()))
}

/// One subscriber: reads until the end of the run; returns the frames it read in the
/// measured period.
async fn read(
    mut reader: Reader,
    _write_half: tokio::net::tcp::OwnedWriteHalf,
    timeline: Timeline,
    latencies: Latencies,
) -> anyhow::Result<u64> {
    let mut recorder = Recorder::new(latencies, timeline);
    let deadline = sleep_until(timeline.until + DRAIN);
    tokio::pin!(deadline);
    loop {
        let (now, text) = tokio::select! {
            biased;
            () = &mut deadline => break,
            frame = reader.next_at() => match frame? {
                (now, Frame::Text(text)) => (now, text),
                (_, Frame::Close(code)) => bail!("closed ({code:?})"),
                (_, Frame::Other) => continue,
            },
        };
        let body = fanout::body_of(text).with_context(|| format!("no body in {text}"))?;
        recorder.read(body, now)?;
    }
    Ok(recorder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_what_a_member_reads_in_the_fanout_scenario() {
        let mut frame = Vec::new();
        encode_frame(123_456, &mut frame);
        assert_eq!(frame[0], 0x81, "final text frame");
        let (len, header) = match frame[1] {
            126 => (usize::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
            n => (usize::from(n), 2),
        };
        assert_eq!(frame.len(), header + len);
        let text = std::str::from_utf8(&frame[header..]).expect("UTF-8");
        let body = fanout::body_of(text).expect("a body");
        assert_eq!(fanout::sent_micros(body), Some(123_456));
    }
}
