//! Scenario `search`: full-text search over a room of a million messages, through the
//! real path (a guest's `search` over the socket, the hub, a reader thread, FTS5), and
//! the index's size on disk.
//!
//! Filling a store through the socket would take hours, so the bench fills it directly:
//! it starts the server once on a fresh data directory (the server's own migrations make
//! the schema and the index), stops it, inserts the messages into `messages` in
//! transactions of `--fill-batch` with SQLite's page cache raised, indexing each with the
//! statement the server's writer uses (so the index is made of segments merged as a
//! server's would be), and starts the server again on that store.
//! The text is generated: a vocabulary of common English words followed by made-up
//! words, drawn with a Zipf distribution (the word of rank r with weight 1/r), 3 to 25
//! words a message, so there are words in most messages and words in a handful.
//!
//! Each kind of query is asked `--queries` times, one at a time (different words each
//! time, from a fixed seed), and its round trip (the `search` sent → `search_results`
//! read) measured.

use std::{collections::HashSet, path::Path, time::Instant};

use anyhow::{Context, bail};
use clap::Args;
use confab_shared::{ClientMsg, ServerMsg};
use hdrhistogram::Histogram;

use crate::{
    CommonArgs, client,
    pin::Placement,
    report::{self, Report},
    server::{self, Peer, ServerProcess},
};

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// Messages in #general.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// One message in this many goes to #ops instead (the small room of `in:`).
    #[arg(long, default_value_t = 1_000)]
    pub ops_every: u64,
    /// Different words (the common ones first). With 200,000, the rarest words of a
    /// million messages are in a handful of them.
    #[arg(long, default_value_t = 200_000)]
    pub vocabulary: usize,
    /// Messages per transaction while filling (the writer's group commits are of this
    /// order under load).
    #[arg(long, default_value_t = 100)]
    pub fill_batch: u64,
    /// Senders, taking turns.
    #[arg(long, default_value_t = 50)]
    pub senders: u64,
    /// Queries of each kind.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// A seconds-long "does it work" run for CI: 20,000 messages, 10 queries a kind.
    #[arg(long)]
    pub smoke: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The first words of the vocabulary, by rank: what most messages contain.
const COMMON: &[&str] = &[
    "the", "to", "and", "a", "i", "it", "is", "of", "you", "that", "in", "for", "on", "we", "this",
    "be", "with", "have", "not", "but", "are", "so", "just", "can", "do", "at", "if", "it's",
    "was", "will", "me", "what", "my", "from", "all", "as", "there", "one", "now", "out", "they",
    "about", "up", "think", "build", "deploy", "test", "server", "room", "message", "today", "fix",
    "release", "works", "error", "branch", "merge", "review", "tomorrow", "meeting", "thanks",
    "sure", "maybe", "later", "check", "looks", "good", "issue", "bench", "latency", "search",
    "index", "query", "client", "socket", "store",
];

/// A small, fast, seeded generator (SplitMix64): the same store every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The words, by rank, and their Zipf cumulative weights.
struct Words {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Words {
    fn new(size: usize, rng: &mut Rng) -> Self {
        const ONSETS: &[&str] = &[
            "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w",
            "z", "br", "ch", "cr", "dr", "fl", "gr", "kl", "pr", "sh", "st", "th", "tr",
        ];
        const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ou", "y"];
        let mut seen: HashSet<String> = COMMON.iter().map(|w| (*w).to_owned()).collect();
        let mut words: Vec<String> = COMMON.iter().map(|w| (*w).to_owned()).collect();
        while words.len() < size {
            let syllables = 2 + rng.below(3);
            let mut word = String::new();
            for _ in 0..syllables {
                word.push_str(ONSETS[rng.below(ONSETS.len() as u64) as usize]);
                word.push_str(VOWELS[rng.below(VOWELS.len() as u64) as usize]);
            }
            if rng.below(3) == 0 {
                word.push_str(ONSETS[rng.below(17) as usize]);
            }
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        let mut total = 0.0;
        let cumulative = (1..=words.len())
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Self { words, cumulative }
    }

    /// A word drawn by its weight.
    fn draw(&self, rng: &mut Rng) -> &str {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let x = rng.unit() * total;
        let rank = self.cumulative.partition_point(|c| *c < x);
        &self.words[rank.min(self.words.len() - 1)]
    }

    fn sentence(&self, rng: &mut Rng) -> String {
        let n = 3 + rng.below(23);
        let mut body = String::new();
        for i in 0..n {
            if i > 0 {
                body.push(' ');
            }
            body.push_str(self.draw(rng));
        }
        body
    }
}

/// When the first message was sent: 2025-01-01T00:00:00Z; one every 30 s after it.
const FIRST_TS: i64 = 1_735_689_600_000;
const EVERY_MS: i64 = 30_000;

/// Fills the store in `dir` (made by the server) with the scenario's messages. Returns
/// how long it took.
fn fill(dir: &Path, args: &SearchArgs, words: &Words, rng: &mut Rng) -> anyhow::Result<f64> {
    let path = server::data_dir(dir).join("confab.sqlite3");
    let mut db = rusqlite::Connection::open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    // 512 MiB of page cache: the index's b-trees stay in memory while it grows.
    db.pragma_update(None, "cache_size", -524_288)?;
    let began = Instant::now();
    db.execute(
        "INSERT OR IGNORE INTO rooms (name, created_at, kind, title) VALUES ('ops', 0, 'public', 'ops')",
        [],
    )?;
    let batch = args.fill_batch.max(1);
    let (mut general, mut ops) = (0u64, 0u64);
    let mut i = 0;
    while i < args.messages {
        let tx = db.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (room, seq, sender, client_id, body, ts, sender_name)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            // The statement the server's writer indexes a stored message with
            // (`store::sqlite::search::index`), so the index grows as a server's would:
            // a segment per transaction, merged as FTS5 merges them.
            let mut index = tx.prepare_cached(
                "INSERT INTO messages_fts (rowid, body, room, sender, day)
                 VALUES (?1, ?2, ?3, ?4, strftime('y%Y m%Y%m d%Y%m%d', ?5 / 1000, 'unixepoch'))",
            )?;
            for _ in 0..batch {
                if i >= args.messages {
                    break;
                }
                let (room, seq) = if i % args.ops_every.max(1) == args.ops_every.max(1) - 1 {
                    ops += 1;
                    ("ops", ops)
                } else {
                    general += 1;
                    ("general", general)
                };
                let sender = format!("user{}", i % args.senders.max(1));
                let ts = FIRST_TS + i64::try_from(i).unwrap_or(i64::MAX) * EVERY_MS;
                let body = words.sentence(rng);
                insert.execute(rusqlite::params![
                    room,
                    i64::try_from(seq)?,
                    sender,
                    format!("b{i}"),
                    body,
                    ts,
                    sender,
                ])?;
                index.execute(rusqlite::params![
                    tx.last_insert_rowid(),
                    body,
                    room,
                    sender,
                    ts
                ])?;
                i += 1;
                if i % 200_000 == 0 {
                    eprintln!("  {i} messages in {:.0} s", began.elapsed().as_secs_f64());
                }
            }
        }
        tx.commit()?;
    }
    let took = began.elapsed().as_secs_f64();
    db.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    Ok(took)
}

/// Bytes of the store's tables and indexes, by name, and the database file's size.
fn sizes(dir: &Path) -> anyhow::Result<(Vec<(String, u64)>, u64)> {
    let path = server::data_dir(dir).join("confab.sqlite3");
    let db = rusqlite::Connection::open(&path)?;
    let mut stmt =
        db.prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")?;
    let rows = stmt
        .query_map([], |row| {
            let bytes: i64 = row.get(1)?;
            Ok((row.get::<_, String>(0)?, u64::try_from(bytes).unwrap_or(0)))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let file = std::fs::metadata(&path)?.len();
    Ok((rows, file))
}

/// One kind of query: its name and the queries asked.
struct Kind {
    name: &'static str,
    queries: Vec<String>,
}

fn kinds(args: &SearchArgs, words: &Words, rng: &mut Rng) -> Vec<Kind> {
    let n = args.queries;
    let w = |rank: usize| words.words[rank.min(words.words.len() - 1)].clone();
    let common: Vec<String> = (0..n).map(|i| w(i % 5)).collect();
    // Ranks past 70 % of the vocabulary: a handful of messages each (at a million).
    let rare_from = words.words.len() * 7 / 10;
    let rare: Vec<String> = (0..n)
        .map(|i| w(rare_from + (i * 37) % (words.words.len() - rare_from)))
        .collect();
    // The first three letters of mid-ranked made-up words: several words each.
    let prefix: Vec<String> = (0..n)
        .map(|i| {
            let word = w(COMMON.len() + 100 + i * 13);
            format!("{}*", word.chars().take(3).collect::<String>())
        })
        .collect();
    // Two words that follow each other in a message the generator could have written:
    // drawn the same way, so common pairs come up often and rare ones seldom.
    let phrase: Vec<String> = (0..n)
        .map(|_| format!("\"{} {}\"", words.draw(rng), words.draw(rng)))
        .collect();
    let days = (args.messages as i64 * EVERY_MS / 86_400_000).max(1);
    let filters: Vec<String> = (0..n)
        .map(|i| match i % 3 {
            0 => format!("{} in:ops", w(i % 5)),
            1 => format!("{} from:user{}", w(i % 5), i as u64 % args.senders.max(1)),
            _ => {
                let day = FIRST_TS / 86_400_000 + rng.below(days as u64) as i64;
                format!("{} on:{}", w(i % 5), civil(day))
            }
        })
        .collect();
    let rare_filtered: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{} in:general",
                w(rare_from + (i * 41) % (words.words.len() - rare_from))
            )
        })
        .collect();
    vec![
        Kind {
            name: "common word",
            queries: common,
        },
        Kind {
            name: "rare word",
            queries: rare,
        },
        Kind {
            name: "prefix (3 letters)",
            queries: prefix,
        },
        Kind {
            name: "phrase (2 words)",
            queries: phrase,
        },
        Kind {
            name: "common word + filter (in:/from:/on:)",
            queries: filters,
        },
        Kind {
            name: "rare word in:general",
            queries: rare_filtered,
        },
    ]
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

pub async fn run(mut args: SearchArgs, placement: Option<Placement>) -> anyhow::Result<Report> {
    if args.smoke {
        args.messages = 20_000;
        args.queries = 10;
        args.vocabulary = 5_000;
    }
    if args.common.peer != Peer::Confab {
        bail!("the search scenario runs against Confab only");
    }
    if args.messages == 0 || args.queries == 0 || args.vocabulary <= COMMON.len() {
        bail!(
            "--messages and --queries must be positive, --vocabulary above {}",
            COMMON.len()
        );
    }
    let dir =
        tempfile::TempDir::with_prefix("confab-bench-search-").context("cannot make a data dir")?;
    let launch = args.common.launch(placement);
    // The server makes the store (its migrations: the schema and the index) and stops.
    // A hello first: the server is then up entirely, its signal handler too.
    let first = ServerProcess::start_in(&launch, dir.path()).await?;
    let mut ws = client::connect(&first.ws_url()).await?;
    client::hello(&mut ws, "maker").await?;
    drop(ws);
    first.stop().await?;
    let mut rng = Rng(0x5EA2C4);
    let words = Words::new(args.vocabulary, &mut rng);
    eprintln!(
        "filling the store with {} messages ({} words, Zipf)",
        args.messages,
        words.words.len()
    );
    let fill_secs = fill(dir.path(), &args, &words, &mut rng)?;
    let (tables, file_bytes) = sizes(dir.path())?;
    let bytes_of = |prefix: &str| -> u64 {
        tables
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, b)| b)
            .sum()
    };
    let index_bytes = bytes_of("messages_fts");
    let messages_bytes = tables
        .iter()
        .filter(|(name, _)| name == "messages" || name.starts_with("sqlite_autoindex_messages"))
        .map(|(_, b)| b)
        .sum::<u64>();
    eprintln!(
        "  filled in {fill_secs:.1} s; database {:.1} MiB: messages (with their indexes) {:.1} MiB, search index {:.1} MiB",
        mib(file_bytes),
        mib(messages_bytes),
        mib(index_bytes)
    );
    for (name, bytes) in tables.iter().take(8) {
        eprintln!("    {name:<40} {:>8.1} MiB", mib(*bytes));
    }

    let server = ServerProcess::start_in(&launch, dir.path()).await?;
    let mut ws = client::connect(&server.ws_url()).await?;
    client::hello(&mut ws, "searcher").await?;
    let mut report = Report::new("search");
    report.meta("messages", args.messages);
    report.meta("queries_per_kind", args.queries as u64);
    report.meta("vocabulary", words.words.len() as u64);
    report.pinning(placement);
    report.column("messages", args.messages);
    report.column("fill s", (fill_secs * 10.0).round() / 10.0);
    report.column("db MiB", round1(mib(file_bytes)));
    report.column("messages MiB", round1(mib(messages_bytes)));
    report.column("index MiB", round1(mib(index_bytes)));
    let mut kinds_json = Vec::new();
    for kind in kinds(&args, &words, &mut rng) {
        let mut latency: Histogram<u64> = report::latency_histogram()?;
        let mut hits_total = 0usize;
        let mut with_more = 0usize;
        let mut refused = 0usize;
        // One unmeasured query first: the first touch of a kind reads its pages in.
        for (i, query) in std::iter::once(&kind.queries[0])
            .chain(kind.queries.iter())
            .enumerate()
        {
            let began = Instant::now();
            client::send(
                &mut ws,
                &ClientMsg::Search {
                    query: query.clone(),
                    before: None,
                },
            )
            .await?;
            let answer = client::expect_or_error(&mut ws, "search results", |m| match m {
                ServerMsg::SearchResults { hits, more, .. } => Some((hits.len(), more)),
                _ => None,
            })
            .await?;
            let took = began.elapsed();
            if i == 0 {
                continue;
            }
            latency.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1))?;
            match answer {
                Ok((hits, more)) => {
                    hits_total += hits;
                    with_more += usize::from(more);
                }
                Err(_) => refused += 1,
            }
        }
        let p50 = latency.value_at_quantile(0.5);
        let p99 = latency.value_at_quantile(0.99);
        eprintln!(
            "  {:<38} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  hits/query {:>5.1}  full pages {:>3}/{}  refused {}",
            kind.name,
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0,
            latency.max() as f64 / 1000.0,
            hits_total as f64 / kind.queries.len() as f64,
            with_more,
            kind.queries.len(),
            refused
        );
        kinds_json.push(serde_json::json!({
            "kind": kind.name,
            "example": kind.queries[0],
            "p50_ms": report::ms(p50),
            "p99_ms": report::ms(p99),
            "max_ms": report::ms(latency.max()),
            "hits_per_query": hits_total as f64 / kind.queries.len() as f64,
            "pages_with_more": with_more,
            "refused": refused,
        }));
        match kind.name {
            "common word" => {
                report.column("common p50 ms", report::ms(p50));
                report.column("common p99 ms", report::ms(p99));
            }
            "rare word" => {
                report.column("rare p50 ms", report::ms(p50));
                report.column("rare p99 ms", report::ms(p99));
            }
            "prefix (3 letters)" => report.column("prefix p99 ms", report::ms(p99)),
            "phrase (2 words)" => report.column("phrase p99 ms", report::ms(p99)),
            "common word + filter (in:/from:/on:)" => {
                report.column("filtered p99 ms", report::ms(p99));
            }
            _ => report.column("rare in:general p99 ms", report::ms(p99)),
        }
    }
    report.meta("kinds", serde_json::Value::Array(kinds_json));
    report.meta(
        "tables_bytes",
        serde_json::Value::Object(
            tables
                .iter()
                .map(|(n, b)| (n.clone(), serde_json::json!(b)))
                .collect(),
        ),
    );
    drop(ws);
    server.stop().await?;
    Ok(report)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_dates() {
        assert_eq!(civil(0), "1970-01-01");
        assert_eq!(civil(20_089), "2025-01-01");
        assert_eq!(civil(-1), "1969-12-31");
    }

    #[test]
    fn words_follow_their_ranks() {
        let mut rng = Rng(1);
        let words = Words::new(1_000, &mut rng);
        assert_eq!(words.words.len(), 1_000);
        let mut the = 0;
        for _ in 0..10_000 {
            if words.draw(&mut rng) == "the" {
                the += 1;
            }
        }
        // Weight 1 of H(1000) ≈ 7.49: about 13 %.
        assert!((1_000..1_700).contains(&the), "{the}");
    }
}
