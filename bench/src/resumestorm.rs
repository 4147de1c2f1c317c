//! Scenario `resumestorm`: a reconnect wave after a restart, as the rest of the chat
//! sees it. Thousands of clients resume #general at once (`join` with `after`, each
//! owed `--backlog` messages) while a few others chat in rooms of their own; the figure
//! is those chatters' round trip (send → their own message back) before and during the
//! wave. A server that reads history on the thread that delivers every room makes the
//! chatters wait behind the reads.

use std::{cell::RefCell, rc::Rc, time::Duration};

use anyhow::{Context, bail};
use clap::Args;
use confab_shared::{ClientMsg, PROTOCOL_VERSION, ServerMsg};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::{sync::watch, time::Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    CommonArgs, client,
    pin::Placement,
    report::{self, CpuMeter, Report},
    server::{Peer, ServerProcess},
};

/// Sockets per loopback source address.
const PER_SOURCE_ADDRESS: usize = 500;

#[derive(Debug, Clone, Args)]
pub struct ResumeStormArgs {
    /// Clients that resume #general at once.
    #[arg(long, default_value_t = 2_000)]
    pub resumers: usize,
    /// Clients chatting, each in a room of its own, measuring their round trip.
    #[arg(long, default_value_t = 10)]
    pub chatters: usize,
    /// Messages each resumer missed (what its resume reads).
    #[arg(long, default_value_t = 100)]
    pub backlog: usize,
    /// Milliseconds between a chatter's round trips.
    #[arg(long, default_value_t = 20)]
    pub interval_ms: u64,
    /// Seconds of chat measured before the wave.
    #[arg(long, default_value_t = 2)]
    pub quiet_secs: u64,
    /// Protocol version to say hello with: a server built before protocol 5 speaks 4.
    #[arg(long, default_value_t = PROTOCOL_VERSION)]
    pub protocol: u32,
    /// A seconds-long "does it work" run for CI: 50 resumers, 2 chatters, no pinning.
    #[arg(long)]
    pub smoke: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The chatters' round trips, before and during the wave.
struct Trips {
    quiet: Histogram<u64>,
    storm: Histogram<u64>,
}

pub async fn run(
    mut args: ResumeStormArgs,
    placement: Option<Placement>,
) -> anyhow::Result<Report> {
    if args.smoke {
        args.resumers = 50;
        args.chatters = 2;
        args.quiet_secs = 1;
    }
    if args.common.peer != Peer::Confab {
        bail!("the resumestorm scenario runs against Confab only");
    }
    if args.resumers == 0 || args.chatters == 0 || args.backlog == 0 {
        bail!("--resumers, --chatters and --backlog must be positive");
    }
    let server = ServerProcess::start(&args.common.launch(placement)).await?;
    eprintln!(
        "confab server pid {} on {}: {} resumes of {} messages each while {} chat",
        server.pid(),
        server.addr,
        args.resumers,
        args.backlog,
        args.chatters
    );
    // What the resumers missed, and a little before it.
    let seeded = args.backlog as u64 + 10;
    let mut seeder = client::connect(&server.ws_url()).await?;
    client::hello_as(&mut seeder, "seeder", args.protocol).await?;
    client::join(&mut seeder, "general").await?;
    for i in 0..seeded {
        client::send(
            &mut seeder,
            &ClientMsg::Send {
                room: "general".into(),
                body: format!("backlog message {i}: some words of an ordinary length"),
                client_id: format!("s{i}"),
                reply_to: None,
                files: Vec::new(),
            },
        )
        .await?;
    }
    let last = format!("s{}", seeded - 1);
    client::expect(&mut seeder, "the backlog's acks", |m| match m {
        ServerMsg::Ack { client_id, .. } if client_id == last => Some(()),
        _ => None,
    })
    .await?;

    let mut resumers = Vec::with_capacity(args.resumers);
    for i in 0..args.resumers {
        let from = client::source_address(i, PER_SOURCE_ADDRESS);
        let mut ws = client::connect_from(server.addr, from).await?;
        client::hello_as(&mut ws, &format!("resumer-{i}"), args.protocol).await?;
        resumers.push(ws);
    }

    let trips = Rc::new(RefCell::new(Trips {
        quiet: report::latency_histogram()?,
        storm: report::latency_histogram()?,
    }));
    // 0: quiet, 1: the wave, 2: over.
    let (phase_tx, phase) = watch::channel(0u8);
    let local = tokio::task::LocalSet::new();
    let outcome = local
        .run_until(async {
            let mut chatters = Vec::new();
            for i in 0..args.chatters {
                let mut ws = client::connect(&server.ws_url()).await?;
                client::hello_as(&mut ws, &format!("chatter-{i}"), args.protocol).await?;
                let room = format!("chat-{i}");
                client::create_rooms(&mut ws, std::slice::from_ref(&room)).await?;
                client::join(&mut ws, &room).await?;
                let (trips, phase) = (Rc::clone(&trips), phase.clone());
                let interval = Duration::from_millis(args.interval_ms);
                chatters.push(tokio::task::spawn_local(chat(
                    ws, room, interval, trips, phase,
                )));
            }
            tokio::time::sleep(Duration::from_secs(args.quiet_secs)).await;

            let cpu = CpuMeter::start(server.pid())?;
            let began = Instant::now();
            phase_tx.send_replace(1);
            let waves: Vec<_> = resumers
                .into_iter()
                .map(|ws| tokio::task::spawn_local(resume(ws, 10)))
                .collect();
            let mut slowest = Duration::ZERO;
            let mut failed = 0;
            for wave in waves {
                match wave.await.context("a resumer crashed")? {
                    Ok(took) => slowest = slowest.max(took),
                    Err(e) => {
                        failed += 1;
                        if failed == 1 {
                            eprintln!("  a resume failed: {e:#}");
                        }
                    }
                }
            }
            let wave_time = began.elapsed();
            let cpu = cpu.finish()?;
            phase_tx.send_replace(2);
            for chatter in chatters {
                chatter.await.context("a chatter crashed")??;
            }
            anyhow::Ok((wave_time, slowest, failed, cpu))
        })
        .await;
    let (wave_time, slowest, failed, cpu) = outcome?;
    server.stop().await?;
    let trips = trips.borrow();
    if trips.storm.is_empty() {
        bail!("no round trip completed during the wave");
    }
    eprintln!(
        "  quiet: p50 {:.2} ms, p99 {:.2} ms; during the wave ({:.2} s): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} resumes failed",
        trips.quiet.value_at_quantile(0.5) as f64 / 1000.0,
        trips.quiet.value_at_quantile(0.99) as f64 / 1000.0,
        wave_time.as_secs_f64(),
        trips.storm.value_at_quantile(0.5) as f64 / 1000.0,
        trips.storm.value_at_quantile(0.99) as f64 / 1000.0,
        trips.storm.max() as f64 / 1000.0,
        failed
    );
    let mut report = Report::new("resumestorm");
    report.meta("backlog", args.backlog as u64);
    report.meta("chatters", args.chatters as u64);
    report.meta("interval_ms", args.interval_ms);
    report.pinning(placement);
    report.column("server", "confab");
    report.column("resumers", args.resumers as u64);
    report.column("resumes failed", failed as u64);
    report.column("wave s", (wave_time.as_secs_f64() * 100.0).round() / 100.0);
    report.column(
        "slowest resume s",
        (slowest.as_secs_f64() * 100.0).round() / 100.0,
    );
    report.column(
        "quiet p50 ms",
        report::ms(trips.quiet.value_at_quantile(0.5)),
    );
    report.column(
        "quiet p99 ms",
        report::ms(trips.quiet.value_at_quantile(0.99)),
    );
    report.column("p50 ms", report::ms(trips.storm.value_at_quantile(0.5)));
    report.column("p99 ms", report::ms(trips.storm.value_at_quantile(0.99)));
    report.column("max ms", report::ms(trips.storm.max()));
    cpu.columns(&mut report);
    Ok(report)
}

/// One chatter: a message, its return, a pause, again, until the wave is over. Each
/// round trip counts towards the phase it started in.
async fn chat(
    mut ws: client::Ws,
    room: String,
    interval: Duration,
    trips: Rc<RefCell<Trips>>,
    phase: watch::Receiver<u8>,
) -> anyhow::Result<()> {
    let mut n = 0u64;
    loop {
        let now = *phase.borrow();
        if now == 2 {
            return Ok(());
        }
        let id = format!("t{n}");
        let sent = Instant::now();
        client::send(
            &mut ws,
            &ClientMsg::Send {
                room: room.clone(),
                body: format!("round trip {n}"),
                client_id: id.clone(),
                reply_to: None,
                files: Vec::new(),
            },
        )
        .await?;
        client::expect(&mut ws, "my own message", |m| match m {
            ServerMsg::Message(m) if m.room == room && m.body == format!("round trip {n}") => {
                Some(())
            }
            _ => None,
        })
        .await?;
        let took = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        {
            let mut trips = trips.borrow_mut();
            match now {
                0 => trips.quiet.saturating_record(took),
                _ => trips.storm.saturating_record(took),
            }
        }
        n += 1;
        tokio::time::sleep(interval).await;
    }
}

/// One resumer: `join` after `after`, following replay pages, until `joined`. Frames
/// are told apart by their start, not parsed: the bench's own thread must not be what
/// slows the chatters.
async fn resume(mut ws: client::Ws, mut after: u64) -> anyhow::Result<Duration> {
    let began = Instant::now();
    loop {
        client::send(
            &mut ws,
            &ClientMsg::Join {
                room: "general".into(),
                after: Some(after),
            },
        )
        .await?;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(60), ws.next())
                .await
                .context("no answer to the resume within 60 s")?
                .context("closed while resuming")?
                .context("failed while resuming")?;
            let Message::Text(text) = frame else { continue };
            if text.starts_with(r#"{"type":"joined""#) {
                return Ok(began.elapsed());
            }
            if text.starts_with(r#"{"type":"error""#) {
                bail!("refused: {}", text.as_str());
            }
            if text.starts_with(r#"{"type":"replay""#) {
                let page: ServerMsg = serde_json::from_str(text.as_str())?;
                if let ServerMsg::Replay { messages, .. } = page {
                    after = messages.last().map_or(after, |m| m.seq);
                }
                break;
            }
        }
    }
}
