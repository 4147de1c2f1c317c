//! Scenario `cluster`: one room whose members are spread over 1, 2, 3… `confab-server`
//! nodes sharing one PostgreSQL and one Redis (docs/ARCHITECTURE.md, "Several nodes").
//!
//! What a node costs the others is what the single-node scenarios cannot show: every
//! message is committed to PostgreSQL by the node its sender is on, published on the
//! room's Redis channel, and delivered by every node to its own members. So each count of
//! nodes gets two runs on the same room shape:
//! - **as fast as delivered** (publishers keep `--window` messages whose own copy has not
//!   come back): delivered msgs/s over all nodes;
//! - **at a fixed rate** (`--rate`, messages published per second over all publishers):
//!   send→delivery latency, apart for members on the sender's node and on another node,
//!   and the CPU each process spends per message at a load none of them is short of.
//!
//! CPU is read from /proc/PID/stat (utime + stime) before and after the measured period
//! for every node, for redis-server, and for the postmaster with all its backends (the
//! backends of connections that closed meanwhile are in the postmaster's cutime/cstime).
//! Bytes through Redis are its `INFO stats` counters `total_net_input_bytes` and
//! `total_net_output_bytes`: every byte Redis read from or wrote to any client, so the
//! nodes' publishes and what Redis pushed to their subscriptions. The two `INFO` exchanges
//! of the bench itself are subtracted. What PostgreSQL writes is its WAL position
//! (`pg_current_wal_lsn()`) before and after, per message published; how many messages
//! one commit carries, its `xact_commit` count (the bench's own two readings included).
//!
//! Pinning (two cores): every node on `--server-core`; the bench, PostgreSQL and Redis on
//! `--bench-core`. The nodes then share one core as they would share one machine's worth
//! of CPU, and what N nodes cost more than one shows as CPU, not as a guess about the
//! scheduler.
//!
//! PostgreSQL and Redis are the test harness's throwaway servers
//! (`server/tests/common/services.rs`), started once for the whole scenario and stopped
//! even on error or panic; or given with `--database-url` and `--redis-url` (then their
//! CPU is not measured).

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Args;
use confab_shared::{ClientMsg, PROTOCOL_VERSION};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::{
    sync::Semaphore,
    time::{Instant, MissedTickBehavior, sleep, sleep_until, timeout},
};

use crate::{
    CommonArgs, client,
    fanout::{Latencies, Recorder, body, body_of},
    pin::{self, Placement},
    rawws::{self, Frame, Reader, Writer},
    report::{self, Report},
    server::{Peer, ServerProcess},
    services::{Postgres, Redis},
    timeline::Timeline,
};

/// How long members keep reading after publishing stops (see the fan-out scenario).
const DRAIN: Duration = Duration::from_millis(500);
const SETUP_CONCURRENCY: usize = 32;
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A room created through the first node may not be known to another one yet when a
/// member joins there: how long a join keeps trying.
const JOIN_PATIENCE: Duration = Duration::from_secs(5);
/// Connections to PostgreSQL each node keeps for sign-ins and files (guests here use
/// none): the harness's PostgreSQL takes 50 connections, and three nodes at the
/// default pool of 16, plus their writers and readers, would ask for more.
const DATABASE_POOL: &str = "8";

#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Counts of nodes to measure, one after the other.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub nodes: Vec<usize>,
    /// Members of the room (each its own connection); member `i` is on node `i % nodes`.
    #[arg(long, default_value_t = 30)]
    pub members: usize,
    /// Members that also publish (members `0..publishers`, so on every node).
    #[arg(long, default_value_t = 30)]
    pub publishers: usize,
    /// The run at the maximum: messages a publisher may have on the way before its own
    /// copy comes back.
    #[arg(long, default_value_t = 4)]
    pub window: usize,
    /// More nodes with no member of the room: each still receives every message of it
    /// (nodes subscribe to every room's channel) and decodes it to find nobody to
    /// deliver to. Their CPU per message is what one node costs for news it has no
    /// use for.
    #[arg(long, default_value_t = 0)]
    pub bystanders: usize,
    /// The latency run: messages published per second over all publishers.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Length of each measured period.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Publishing before each measured period, not counted.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Use this PostgreSQL (`postgres://…`) rather than starting one.
    #[arg(long, requires = "redis_url")]
    pub database_url: Option<String>,
    /// Use this Redis (`redis://HOST:PORT`) rather than starting one.
    #[arg(long, requires = "database_url")]
    pub redis_url: Option<String>,
    /// A seconds-long "does it work" run for CI: 1 and 2 nodes, 4 members, 1 s each, no
    /// warmup, no pinning. Fails on any error, if nothing is delivered, or if with two
    /// nodes nothing crossed from one to the other.
    #[arg(long)]
    pub smoke: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// PostgreSQL and Redis for the whole scenario: started here (and stopped when dropped,
/// a panic included), or given.
struct Backends {
    database_url: String,
    redis_url: String,
    redis_addr: SocketAddr,
    /// Set when the bench started them: whose CPU to read.
    postgres: Option<Postgres>,
    redis: Option<Redis>,
}

impl Backends {
    /// Starts throwaway servers, pinned to `core` if given. Blocking (the harness is
    /// synchronous); nothing else runs yet.
    fn start(core: Option<usize>) -> anyhow::Result<Backends> {
        let postgres = Postgres::start().context(
            "cannot start PostgreSQL (scripts/bench.sh installs it: ensure_postgres in \
             scripts/lib.sh)",
        )?;
        let redis = Redis::start().context(
            "cannot start Redis (scripts/bench.sh installs it: ensure_redis in scripts/lib.sh)",
        )?;
        if let Some(core) = core {
            // Backends started later are forked by the postmaster and inherit its mask.
            let postmaster = postgres.pid().context("PostgreSQL has no pid")?;
            for pid in std::iter::once(postmaster).chain(children_of(postmaster)) {
                pin::process_to(pid, core)?;
            }
            pin::process_to(redis.pid().context("Redis has no pid")?, core)?;
        }
        Ok(Backends {
            database_url: postgres.url(),
            redis_url: redis.url(),
            redis_addr: SocketAddr::from(([127, 0, 0, 1], redis.port())),
            postgres: Some(postgres),
            redis: Some(redis),
        })
    }

    fn given(database_url: String, redis_url: String) -> anyhow::Result<Backends> {
        let redis_addr = redis_addr(&redis_url)?;
        Ok(Backends {
            database_url,
            redis_url,
            redis_addr,
            postgres: None,
            redis: None,
        })
    }
}

/// Why the bench could not start PostgreSQL and Redis itself, if their binaries are
/// missing: the suite then skips the scenario and says so.
pub fn missing_binaries() -> Option<String> {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
    };
    let postgres = on_path("initdb")
        || std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .any(|v| v.path().join("bin/initdb").is_file());
    let mut missing = Vec::new();
    if !postgres {
        missing.push("PostgreSQL (initdb)");
    }
    if !on_path("redis-server") {
        missing.push("redis-server");
    }
    (!missing.is_empty()).then(|| {
        format!(
            "{} not installed (scripts/bench.sh and scripts/test.sh install them)",
            missing.join(" and ")
        )
    })
}

/// `redis://HOST:PORT[/DB]` → the address `INFO` is asked at. URLs with a password or a
/// name to resolve are not supported: the figures need a plain connection.
fn redis_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("redis://")
        .with_context(|| format!("--redis-url {url}: expected redis://HOST:PORT"))?;
    let host_port = rest.split('/').next().unwrap_or(rest);
    host_port
        .parse()
        .with_context(|| format!("--redis-url {url}: expected redis://IP:PORT"))
}

/// Pids whose parent is `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parse_ppid(&stat))
                == Some(parent)
        })
        .collect()
}

/// Field 4 of a /proc/PID/stat line (after the command name, which may hold spaces).
fn parse_ppid(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The reply to one `INFO stats` on a fresh connection: a RESP bulk string.
fn redis_info(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("cannot reach {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(INFO_REQUEST)?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).context("cannot read INFO")?;
        if n == 0 {
            bail!("Redis closed the connection during INFO");
        }
        reply.extend_from_slice(&buf[..n]);
        if let Some(text) = complete_bulk(&reply) {
            return Ok(text.to_owned());
        }
    }
}

const INFO_REQUEST: &[u8] = b"INFO stats\r\n";

/// The payload of a RESP bulk string (`$LEN\r\n…\r\n`) once all of it is in `reply`.
fn complete_bulk(reply: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(reply).ok()?;
    let (len, rest) = text.strip_prefix('$')?.split_once("\r\n")?;
    let len: usize = len.parse().ok()?;
    (rest.len() >= len + 2).then(|| &rest[..len])
}

/// A counter of `INFO` (`name:value` lines).
fn info_field(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
        .trim()
        .parse()
        .ok()
}

/// Bytes Redis read and wrote in total, and the length of the reply that told so.
#[derive(Debug, Clone, Copy)]
struct RedisBytes {
    input: u64,
    output: u64,
    reply_len: u64,
}

fn redis_bytes(addr: SocketAddr) -> anyhow::Result<RedisBytes> {
    let info = redis_info(addr)?;
    let field = |name| info_field(&info, name).with_context(|| format!("no {name} in INFO"));
    Ok(RedisBytes {
        input: field("total_net_input_bytes")?,
        output: field("total_net_output_bytes")?,
        // The bulk string's header and trailer went out too.
        reply_len: (info.len() + format!("${}\r\n\r\n", info.len()).len()) as u64,
    })
}

/// CPU so far of each live PostgreSQL process, by pid, with its title.
type Processes = HashMap<u32, (String, Duration)>;

/// What the [`PgCounters`]' thread is asked, with where to answer.
enum PgRequest {
    Count(mpsc::Sender<anyhow::Result<PgCount>>),
    Analyze(mpsc::Sender<anyhow::Result<()>>),
}

/// What PostgreSQL has done so far.
#[derive(Debug, Clone, Copy)]
struct PgCount {
    /// WAL position: bytes since the start of its log.
    wal: u64,
    /// Transactions committed in every database (`pg_stat_database.xact_commit`). Each
    /// backend reports its own at most once a second, so over a 10 s period this is
    /// right to about a tenth.
    commits: u64,
}

/// Reads [`PgCount`] on a thread of its own over one connection: the client is
/// synchronous and must not run on the runtime's thread, and a connection per reading
/// would add a backend's start-up to the CPU being measured. The thread ends, and
/// closes its connection, when the last clone is dropped.
#[derive(Clone)]
struct PgCounters {
    ask: mpsc::Sender<PgRequest>,
}

impl PgCounters {
    /// Gathers the statistics of every table (blocking); see [`run_one`] for why.
    fn analyze(&self) -> anyhow::Result<()> {
        let (reply, answer) = mpsc::channel();
        self.ask
            .send(PgRequest::Analyze(reply))
            .context("the PostgreSQL counters' thread stopped")?;
        answer
            .recv()
            .context("the PostgreSQL counters' thread stopped")?
            .context("ANALYZE failed")
    }

    /// Connects (blocking).
    fn start(url: &str) -> anyhow::Result<PgCounters> {
        let (ask, requests) = mpsc::channel::<PgRequest>();
        let (ready, connected) = mpsc::channel();
        let url = url.to_owned();
        std::thread::Builder::new()
            .name("pg-counters".into())
            .spawn(move || {
                let mut client = match postgres::Client::connect(&url, postgres::NoTls) {
                    Ok(client) => {
                        let _ = ready.send(Ok(()));
                        client
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                for request in requests {
                    let reply = match request {
                        PgRequest::Count(reply) => reply,
                        PgRequest::Analyze(reply) => {
                            let _ = reply.send(client.batch_execute("ANALYZE").map_err(Into::into));
                            continue;
                        }
                    };
                    let count = client
                        .query_one(
                            "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint,
                                    (SELECT sum(xact_commit) FROM pg_stat_database)::bigint",
                            &[],
                        )
                        .and_then(|row| Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?)))
                        .map_err(anyhow::Error::new)
                        .and_then(|(wal, commits)| {
                            Ok(PgCount {
                                wal: u64::try_from(wal)?,
                                commits: u64::try_from(commits)?,
                            })
                        });
                    let _ = reply.send(count);
                }
            })
            .context("cannot start the PostgreSQL counters' thread")?;
        connected
            .recv()
            .context("the PostgreSQL counters' thread stopped")?
            .context("cannot connect to PostgreSQL to read its counters")?;
        Ok(PgCounters { ask })
    }

    /// The counters now (blocking).
    fn read(&self) -> anyhow::Result<PgCount> {
        let (reply, answer) = mpsc::channel();
        self.ask
            .send(PgRequest::Count(reply))
            .context("the PostgreSQL counters' thread stopped")?;
        answer
            .recv()
            .context("the PostgreSQL counters' thread stopped")?
    }
}

/// CPU time so far of everything measured.
#[derive(Debug, Clone)]
struct CpuSnapshot {
    at: std::time::Instant,
    nodes: Vec<Duration>,
    redis: Option<Duration>,
    postgres: Option<Duration>,
    postgres_processes: Processes,
    bench: Duration,
    machine: Duration,
}

/// Whose CPU to read.
#[derive(Debug, Clone)]
struct Pids {
    nodes: Vec<u32>,
    redis: Option<u32>,
    postmaster: Option<u32>,
}

impl Pids {
    fn snapshot(&self) -> anyhow::Result<CpuSnapshot> {
        let of = |pid: u32| report::cpu_time_of(&format!("/proc/{pid}/stat"));
        let nodes = self
            .nodes
            .iter()
            .map(|&pid| of(pid))
            .collect::<anyhow::Result<_>>()?;
        let redis = self.redis.map(of).transpose()?;
        let (postgres, postgres_processes) = match self.postmaster.map(postgres_cpu).transpose()? {
            Some((total, processes)) => (Some(total), processes),
            None => (None, HashMap::new()),
        };
        Ok(CpuSnapshot {
            at: std::time::Instant::now(),
            nodes,
            redis,
            postgres,
            postgres_processes,
            bench: report::cpu_time_of("/proc/self/stat")?,
            machine: report::machine_busy_time()?,
        })
    }
}

/// PostgreSQL's CPU so far: in all (the postmaster, its live children and the children
/// it has reaped), and by live process with its title (`postgres: walwriter`, a
/// backend's `postgres: USER DB ADDR(PORT) STATE`): which of them a message costs.
fn postgres_cpu(postmaster: u32) -> anyhow::Result<(Duration, Processes)> {
    let path = format!("/proc/{postmaster}/stat");
    let own = report::cpu_time_of(&path)?;
    let reaped = report::children_cpu_time_of(&path)?;
    let children: Processes = children_of(postmaster)
        .into_iter()
        // A backend may exit between the listing and the read.
        .filter_map(|pid| {
            let cpu = report::cpu_time_of(&format!("/proc/{pid}/stat")).ok()?;
            let title = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let title = String::from_utf8_lossy(&title)
                .trim_end_matches('\0')
                .replace('\0', " ");
            Some((pid, (title, cpu)))
        })
        .collect();
    let total = own + reaped + children.values().map(|(_, cpu)| *cpu).sum::<Duration>();
    Ok((total, children))
}

/// The PostgreSQL processes that used the most CPU between two snapshots, with their
/// titles at the end; a backend's state (`idle`, `INSERT`…) and client port are dropped
/// so the same role reads alike from run to run.
fn busiest_postgres(before: &CpuSnapshot, after: &CpuSnapshot, most: usize) -> Vec<Value> {
    let mut used: Vec<(String, Duration)> = after
        .postgres_processes
        .iter()
        .map(|(pid, (title, cpu))| {
            let from = before
                .postgres_processes
                .get(pid)
                .map_or(Duration::ZERO, |(_, cpu)| *cpu);
            (backend_role(title), cpu.saturating_sub(from))
        })
        .filter(|(_, cpu)| !cpu.is_zero())
        .collect();
    used.sort_by_key(|(_, cpu)| std::cmp::Reverse(*cpu));
    used.into_iter()
        .take(most)
        .map(|(title, cpu)| json!({"process": title, "cpu_secs": cpu.as_secs_f64()}))
        .collect()
}

/// `postgres: postgres postgres 127.0.0.1(41234) INSERT` → `postgres: postgres postgres
/// 127.0.0.1`; background processes' titles as they are.
fn backend_role(title: &str) -> String {
    match title.find('(') {
        Some(at) => title[..at].to_owned(),
        None => title.to_owned(),
    }
}

pub async fn run(
    mut args: ClusterArgs,
    placement: Option<Placement>,
) -> anyhow::Result<Vec<Report>> {
    if args.smoke {
        args.nodes = vec![1, 2];
        args.members = args.members.min(4);
        args.publishers = args.publishers.min(2);
        args.duration_secs = 1;
        args.warmup_secs = 0;
        args.rate = args.rate.min(50.0);
    }
    if args.common.peer != Peer::Confab {
        bail!("the cluster scenario measures confab-server only");
    }
    if args.nodes.is_empty() || args.nodes.contains(&0) {
        bail!("--nodes must be counts of at least 1");
    }
    if args.members == 0 || args.duration_secs == 0 || args.window == 0 {
        bail!("--members, --duration-secs and --window must be at least 1");
    }
    if args.publishers == 0 || args.publishers > args.members {
        bail!("--publishers must be between 1 and --members");
    }
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a positive number");
    }
    let backends = match (args.database_url.clone(), args.redis_url.clone()) {
        (Some(db), Some(redis)) => Backends::given(db, redis)?,
        _ => {
            let core = placement.map(|p| p.bench_core);
            tokio::task::spawn_blocking(move || Backends::start(core))
                .await
                .context("starting PostgreSQL and Redis crashed")??
        }
    };
    eprintln!(
        "cluster: PostgreSQL {}, Redis {}",
        backends.database_url, backends.redis_url
    );
    let mut reports = Vec::new();
    let outcome = async {
        for &nodes in &args.nodes {
            for rate in [None, Some(args.rate)] {
                let report = run_one(&args, &backends, nodes, rate, placement).await?;
                report.print_table();
                reports.push(report);
            }
        }
        anyhow::Ok(())
    }
    .await;
    // Stopped off the runtime's thread: the harness waits for them synchronously.
    tokio::task::spawn_blocking(move || drop(backends))
        .await
        .context("stopping PostgreSQL and Redis crashed")?;
    outcome?;
    Ok(reports)
}

/// One run: `nodes` fresh nodes, a fresh room, as fast as delivered or at `rate`.
async fn run_one(
    args: &ClusterArgs,
    backends: &Backends,
    nodes: usize,
    rate: Option<f64>,
    placement: Option<Placement>,
) -> anyhow::Result<Report> {
    let mut launch = args.common.launch(placement);
    launch.extra_args.extend([
        "--database-url".to_owned(),
        backends.database_url.clone(),
        "--redis-url".to_owned(),
        backends.redis_url.clone(),
        "--database-pool".to_owned(),
        DATABASE_POOL.to_owned(),
    ]);
    // One after the other: the first creates the schema. Each is killed if dropped, so
    // an error anywhere below leaves none running. Bystanders come last, after the
    // nodes members are on.
    let mut servers = Vec::with_capacity(nodes + args.bystanders);
    for _ in 0..nodes + args.bystanders {
        servers.push(ServerProcess::start(&launch).await?);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 100_000_000)
        .unwrap_or(0);
    let room = format!(
        "cl{nodes}-{}-{}-{stamp}",
        if rate.is_some() { "rate" } else { "max" },
        std::process::id()
    );
    eprintln!(
        "cluster: {nodes} node(s) (pids {:?}), room {room}: {} members, {} publishing, {}",
        servers.iter().map(ServerProcess::pid).collect::<Vec<_>>(),
        args.members,
        args.publishers,
        match rate {
            Some(rate) => format!("{rate} msgs/s in total"),
            None => format!("as fast as delivered (window {})", args.window),
        }
    );
    let mut admin = client::connect(&servers[0].ws_url()).await?;
    client::hello(&mut admin, "bench-admin").await?;
    client::create_rooms(&mut admin, std::slice::from_ref(&room)).await?;
    drop(admin);

    let url = backends.database_url.clone();
    let pg = tokio::task::spawn_blocking(move || PgCounters::start(&url))
        .await
        .context("connecting to PostgreSQL crashed")??;
    let addrs: Vec<SocketAddr> = servers[..nodes].iter().map(|s| s.addr).collect();
    let sockets = set_up_members(&addrs, args, &room).await?;
    let interval = rate.map(|rate| Duration::from_secs_f64(args.publishers as f64 / rate));
    let timeline = Timeline::from_now(args.warmup_secs, args.duration_secs);
    let same: Latencies = Arc::new(Mutex::new(report::latency_histogram()?));
    let cross: Latencies = Arc::new(Mutex::new(report::latency_histogram()?));
    let published = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|(id, reader, writer)| {
            let plan = Plan {
                id,
                nodes,
                room: room.clone(),
                publishes: id < args.publishers,
                interval,
                publishers: args.publishers,
                window: args.window,
                timeline,
                published: published.clone(),
            };
            tokio::spawn(member(reader, writer, plan, [same.clone(), cross.clone()]))
        })
        .collect();

    let pids = Pids {
        nodes: servers.iter().map(ServerProcess::pid).collect(),
        redis: backends.redis.as_ref().and_then(Redis::pid),
        postmaster: backends.postgres.as_ref().and_then(Postgres::pid),
    };
    // Halfway through the warm-up, statistics of the tables as they now are. The nodes'
    // connections keep the plans of their prepared statements until statistics change;
    // made while `messages` was empty, on a fresh database, the writer's look-up of
    // repeated sends scans and hashes the whole table for every batch. Autovacuum
    // analyzes a table within about a minute of its growth, after which every node has
    // the plan it keeps; this measures that state rather than a fresh database's first
    // minute (docs/PERFORMANCE.md, "Cluster").
    sleep_until(timeline.start + (timeline.measure_from - timeline.start) / 2).await;
    let analyzing = pg.clone();
    tokio::task::spawn_blocking(move || analyzing.analyze())
        .await
        .context("ANALYZE crashed")??;
    sleep_until(timeline.measure_from).await;
    let before = measure(&pids, backends.redis_addr, &pg).await?;
    sleep_until(timeline.until).await;
    let after = measure(&pids, backends.redis_addr, &pg).await?;

    let mut per_node = vec![0u64; nodes + args.bystanders];
    for (id, task) in tasks.into_iter().enumerate() {
        let read = task
            .await
            .with_context(|| format!("member {id} crashed"))?
            .with_context(|| format!("member {id} failed"))?;
        per_node[id % nodes] += read.same + read.cross;
    }
    let [same, cross] = [same, cross].map(|l| {
        Arc::into_inner(l).map(|l| l.into_inner().unwrap_or_else(PoisonError::into_inner))
    });
    let same = same.context("a member still holds the latencies")?;
    let cross = cross.context("a member still holds the latencies")?;
    let mut stopped = Ok(());
    for server in servers {
        let result = server.stop().await;
        if stopped.is_ok() {
            stopped = result;
        }
    }
    stopped?;

    let delivered: u64 = per_node.iter().sum();
    let published = published.load(Ordering::Relaxed);
    if delivered == 0 || published == 0 {
        bail!(
            "nothing was delivered in the measured period ({published} messages published, \
             {delivered} delivered)"
        );
    }
    if nodes > 1 && cross.is_empty() {
        bail!("with {nodes} nodes no message reached a member on another node than its sender");
    }

    let (cpu_before, bytes_before, pg_before) = before;
    let (cpu_after, bytes_after, pg_after) = after;
    let wal_bytes = pg_after.wal.saturating_sub(pg_before.wal);
    let commits = pg_after.commits.saturating_sub(pg_before.commits);
    let wall = cpu_after.at.duration_since(cpu_before.at);
    let secs = args.duration_secs as f64;
    let node_cpu: Vec<Duration> = cpu_after
        .nodes
        .iter()
        .zip(&cpu_before.nodes)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let diff = |a: Option<Duration>, b: Option<Duration>| Some(a?.saturating_sub(b?));
    let redis_cpu = diff(cpu_after.redis, cpu_before.redis);
    let postgres_cpu = diff(cpu_after.postgres, cpu_before.postgres);
    let bench_cpu = cpu_after.bench.saturating_sub(cpu_before.bench);
    let nodes_cpu: Duration = node_cpu[..nodes].iter().sum();
    let bystanders_cpu: Duration = node_cpu[nodes..].iter().sum();
    let other = cpu_after
        .machine
        .saturating_sub(cpu_before.machine)
        .saturating_sub(nodes_cpu + bystanders_cpu + bench_cpu)
        .saturating_sub(redis_cpu.unwrap_or_default() + postgres_cpu.unwrap_or_default());
    // The first INFO's reply and the second's request are the bench's own bytes.
    let redis_in = bytes_after
        .input
        .saturating_sub(bytes_before.input)
        .saturating_sub(INFO_REQUEST.len() as u64);
    let redis_out = bytes_after
        .output
        .saturating_sub(bytes_before.output)
        .saturating_sub(bytes_before.reply_len);

    let micros_per =
        |cpu: Duration, n: u64| json!((cpu.as_secs_f64() * 1e6 / n as f64 * 100.0).round() / 100.0);
    let joined = |values: Vec<String>| values.join("/");
    let mut report = Report::new("cluster");
    report.meta("duration_secs", args.duration_secs);
    report.meta("bystanders", args.bystanders);
    report.meta("warmup_secs", args.warmup_secs);
    report.meta("room", room);
    report.meta("database_pool", DATABASE_POOL);
    report.meta("server_args", args.common.server_args.clone());
    report.meta(
        "backends_started_by_bench",
        backends.postgres.is_some() && backends.redis.is_some(),
    );
    report.meta(
        "node_delivered",
        per_node.iter().map(|&n| json!(n)).collect::<Vec<Value>>(),
    );
    report.meta(
        "node_cpu_secs",
        node_cpu
            .iter()
            .map(|c| json!(c.as_secs_f64()))
            .collect::<Vec<Value>>(),
    );
    report.meta("published", published);
    report.meta("redis_in_bytes", redis_in);
    report.meta("redis_out_bytes", redis_out);
    report.meta("pg_wal_bytes", wal_bytes);
    report.meta("pg_commits", commits);
    report.meta(
        "pg_busiest_processes",
        busiest_postgres(&cpu_before, &cpu_after, 6),
    );
    report.meta("same_node_deliveries", same.len());
    report.meta("cross_node_deliveries", cross.len());
    report.pinning(placement);
    report.column("nodes", nodes);
    report.column("members", args.members);
    report.column("publishers", args.publishers);
    report.column(
        "rate",
        match rate {
            Some(rate) => json!(rate),
            None => json!(format!("max/w{}", args.window)),
        },
    );
    report.column("delivered/s", (delivered as f64 / secs).round() as u64);
    report.column("published/s", (published as f64 / secs).round() as u64);
    let quantile = |h: &hdrhistogram::Histogram<u64>, q: f64| {
        if h.is_empty() {
            Value::Null
        } else {
            report::ms(h.value_at_quantile(q))
        }
    };
    report.column("same p50 ms", quantile(&same, 0.50));
    report.column("same p99 ms", quantile(&same, 0.99));
    report.column("cross p50 ms", quantile(&cross, 0.50));
    report.column("cross p99 ms", quantile(&cross, 0.99));
    report.column(
        "node CPU %",
        joined(
            node_cpu
                .iter()
                .map(|c| report::cpu_percent(*c, wall).to_string())
                .collect(),
        ),
    );
    report.column(
        "node µs/delivery",
        joined(
            node_cpu[..nodes]
                .iter()
                .zip(&per_node)
                .map(|(c, n)| micros_per(*c, (*n).max(1)).to_string())
                .collect(),
        ),
    );
    report.column("nodes µs/msg", micros_per(nodes_cpu, published));
    if args.bystanders > 0 {
        report.column("bystanders", args.bystanders);
        report.column(
            "bystander µs/msg",
            micros_per(bystanders_cpu / args.bystanders as u32, published),
        );
    }
    report.column(
        "redis CPU %",
        redis_cpu.map_or(Value::Null, |c| report::cpu_percent(c, wall)),
    );
    report.column(
        "redis µs/msg",
        redis_cpu.map_or(Value::Null, |c| micros_per(c, published)),
    );
    report.column(
        "pg CPU %",
        postgres_cpu.map_or(Value::Null, |c| report::cpu_percent(c, wall)),
    );
    report.column(
        "pg µs/msg",
        postgres_cpu.map_or(Value::Null, |c| micros_per(c, published)),
    );
    report.column(
        "redis in B/msg",
        (redis_in as f64 / published as f64).round() as u64,
    );
    report.column(
        "redis out B/msg",
        (redis_out as f64 / published as f64).round() as u64,
    );
    report.column(
        "pg WAL B/msg",
        (wal_bytes as f64 / published as f64).round() as u64,
    );
    report.column(
        "pg msgs/commit",
        json!((published as f64 / commits.max(1) as f64 * 10.0).round() / 10.0),
    );
    report.column("bench CPU %", report::cpu_percent(bench_cpu, wall));
    report.column("other CPU %", report::cpu_percent(other, wall));
    Ok(report)
}

/// CPU of everything and Redis's byte counters, read off the runtime's thread so the
/// members' reading goes on meanwhile.
async fn measure(
    pids: &Pids,
    redis: SocketAddr,
    pg: &PgCounters,
) -> anyhow::Result<(CpuSnapshot, RedisBytes, PgCount)> {
    let pids = pids.clone();
    let pg = pg.clone();
    tokio::task::spawn_blocking(move || {
        let cpu = pids.snapshot()?;
        let bytes = redis_bytes(redis)?;
        let pg = pg.read()?;
        anyhow::Ok((cpu, bytes, pg))
    })
    .await
    .context("measuring crashed")?
}

/// Connects every member to its node (`i % nodes`), says hello and joins the room.
async fn set_up_members(
    addrs: &[SocketAddr],
    args: &ClusterArgs,
    room: &str,
) -> anyhow::Result<Vec<(usize, Reader, Writer)>> {
    let mut pending = futures_util::stream::iter((0..args.members).map(|i| {
        let addr = addrs[i % addrs.len()];
        let room = room.to_owned();
        async move {
            timeout(SETUP_TIMEOUT + JOIN_PATIENCE, set_up_member(addr, i, room))
                .await
                .with_context(|| format!("member {i} was not ready in time"))?
        }
    }))
    .buffer_unordered(SETUP_CONCURRENCY);
    let mut sockets = Vec::with_capacity(args.members);
    let mut retried = 0;
    while let Some(member) = pending.next().await {
        let (member, joins) = member.context("a member could not get ready")?;
        sockets.push(member);
        retried += usize::from(joins > 1);
    }
    if retried > 0 {
        eprintln!(
            "cluster: {retried} member(s) joined again: the room, made through the first node, \
             was not known yet on theirs"
        );
    }
    Ok(sockets)
}

async fn set_up_member(
    addr: SocketAddr,
    i: usize,
    room: String,
) -> anyhow::Result<((usize, Reader, Writer), u32)> {
    let (mut reader, mut writer) = rawws::connect(addr, None).await?;
    writer.text(
        &ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: Some(format!("cl-{i}")),
        }
        .to_json(),
    );
    writer.flush().await?;
    rawws::expect(&mut reader, "welcome", r#"{"type":"welcome""#).await?;
    let joined = format!(r#"{{"type":"joined","room":"{room}""#);
    let give_up = Instant::now() + JOIN_PATIENCE;
    let mut joins = 0;
    loop {
        joins += 1;
        writer.text(
            &ClientMsg::Join {
                room: room.clone(),
                after: None,
            }
            .to_json(),
        );
        writer.flush().await?;
        match rawws::expect(&mut reader, "joined", &joined).await {
            Ok(()) => return Ok(((i, reader, writer), joins)),
            Err(e) if Instant::now() < give_up && format!("{e:#}").contains("unknown_room") => {
                sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// What one member does.
#[derive(Debug, Clone)]
struct Plan {
    id: usize,
    nodes: usize,
    room: String,
    publishes: bool,
    interval: Option<Duration>,
    publishers: usize,
    window: usize,
    timeline: Timeline,
    /// Messages all publishers sent in the measured period.
    published: Arc<AtomicU64>,
}

/// Messages a member read in the measured period, by where their sender was.
#[derive(Debug, Default, Clone, Copy)]
struct Received {
    same: u64,
    cross: u64,
}

/// Reads (and publishes, if it is a publisher) until the end of the run. A message's
/// sender is the first word of its body, and sender `p` is on node `p % nodes`.
async fn member(
    mut reader: Reader,
    writer: Writer,
    plan: Plan,
    [same, cross]: [Latencies; 2],
) -> anyhow::Result<Received> {
    let window = Arc::new(Semaphore::new(plan.window));
    let publisher = if plan.publishes {
        Some(tokio::spawn(publish(writer, plan.clone(), window.clone())))
    } else {
        reader.answer_pings(writer);
        None
    };
    let my_node = plan.id % plan.nodes;
    let mut same = Recorder::new(same, plan.timeline);
    let mut cross = Recorder::new(cross, plan.timeline);
    // Senders seen so far and whether they are on this member's node.
    let mut senders: HashMap<usize, bool> = HashMap::new();
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
        let sender: usize = body
            .split(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no sender in {body}"))?;
        if plan.publishes && sender == plan.id {
            window.add_permits(1);
        }
        let local = *senders
            .entry(sender)
            .or_insert_with(|| sender % plan.nodes == my_node);
        if local {
            same.read(body, now)?;
        } else {
            cross.read(body, now)?;
        }
    }
    let read = Received {
        same: same.finish(),
        cross: cross.finish(),
    };
    if let Some(publisher) = publisher {
        let writer = publisher
            .await
            .context("the publisher crashed")?
            .context("the publisher failed")?;
        drop(writer);
    }
    Ok(read)
}

/// Publishes until the end of the run, at a fixed interval or whenever the window has
/// room; counts what it sends in the measured period. Hands the writing half back so
/// the connection stays open while the member still reads.
async fn publish(mut writer: Writer, plan: Plan, window: Arc<Semaphore>) -> anyhow::Result<Writer> {
    let Plan {
        id,
        room,
        interval,
        publishers,
        timeline,
        published,
        ..
    } = plan;
    let mut ticker = interval.map(|every| {
        // Publishers take turns, evenly spaced, as in the fan-out scenario.
        let turn = every.mul_f64(id as f64 / publishers as f64);
        let mut ticker = tokio::time::interval_at(timeline.start + turn, every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        ticker
    });
    let mut n: u64 = 0;
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
        let stamp =
            u64::try_from(now.duration_since(timeline.start).as_micros()).unwrap_or(u64::MAX);
        for _ in 0..batch {
            n += 1;
            let msg = ClientMsg::Send {
                room: room.clone(),
                body: body(id, stamp),
                // Unique per sender over every run on the same store: a repeated id is
                // acknowledged as already sent and never delivered again.
                client_id: format!("{room}-{n}"),
                reply_to: None,
                files: Vec::new(),
            };
            writer.text(&msg.to_json());
        }
        if timeline.measured(now) {
            published.fetch_add(batch, Ordering::Relaxed);
        }
        writer.flush().await?;
    }
    Ok(writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parent_after_a_command_with_spaces() {
        let stat = "42 (postgres: x (y)) S 7 42 42 0 -1 4194560";
        assert_eq!(parse_ppid(stat), Some(7));
    }

    #[test]
    fn a_backend_is_named_by_its_role_not_its_port_or_state() {
        assert_eq!(
            backend_role("postgres: postgres postgres 127.0.0.1(41234) INSERT"),
            "postgres: postgres postgres 127.0.0.1"
        );
        assert_eq!(backend_role("postgres: walwriter "), "postgres: walwriter ");
    }

    #[test]
    fn a_bulk_string_is_complete_only_with_all_its_bytes() {
        assert_eq!(complete_bulk(b"$5\r\nab"), None);
        assert_eq!(complete_bulk(b"$5\r\nabcde\r"), None);
        assert_eq!(complete_bulk(b"$5\r\nabcde\r\n"), Some("abcde"));
    }

    #[test]
    fn reads_info_counters() {
        let info = "# Stats\r\ntotal_net_input_bytes:1234\r\ntotal_net_output_bytes:99\r\n";
        assert_eq!(info_field(info, "total_net_input_bytes"), Some(1234));
        assert_eq!(info_field(info, "total_net_output_bytes"), Some(99));
        assert_eq!(info_field(info, "total_net"), None);
    }

    #[test]
    fn the_redis_address_comes_from_its_url() {
        assert_eq!(
            redis_addr("redis://127.0.0.1:6380").expect("addr"),
            SocketAddr::from(([127, 0, 0, 1], 6380))
        );
        assert!(redis_addr("redis://:secret@host:6379").is_err());
        assert!(redis_addr("http://127.0.0.1:6379").is_err());
    }
}
