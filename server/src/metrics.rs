//! What the server counts for an operator's dashboards and alerts, served as Prometheus
//! text by `GET /metrics` (see `http::metrics`).
//!
//! Why it is built this way:
//! - **Registered once.** Every series is registered when the server starts and its
//!   handle kept in [`Metrics`]; counting is an atomic add on a handle, never a look-up
//!   by name. Series with a label (a close code, a refusal reason) are a small array of
//!   handles, one per value of a closed set, so no label value ever comes from a client
//!   and no room or user name becomes a series.
//! - **Counted where it is decided, once.** The hub counts what it decides (messages
//!   received, stored, delivered; refusals; history reads; slow consumers), the store
//!   writer its commits, the connection task how it ended, the HTTP edge sign-ins and
//!   refusals. A fan-out is counted once, with its number of recipients, not once per
//!   socket write: the delivery path is the server's hottest.
//! - **Owned by the server, not global.** The recorder is `metrics-exporter-prometheus`'s,
//!   built per [`crate::serve`] and never installed as the process's global recorder, so
//!   the in-process tests' servers each count their own. Without an exporter
//!   (`--metrics-listen` and `--metrics-token` both unset, and in the hub's unit tests)
//!   the handles are no-ops.
//! - **Histograms in fixed buckets** ([`histogram`]): counted in place, so their memory
//!   does not grow with the rate, where the exporter's own keep every observation until
//!   a scrape.
//! - **Process figures read at scrape time** from `/proc/self` (Linux), under the names
//!   every Prometheus client uses (`process_*`), so stock dashboards and alerts work.
//!
//! The series ([`DESCRIPTIONS`] holds each help text, which the scrape carries):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `confab_connections_open` | gauge | |
//! | `confab_connections_opened_total` | counter | |
//! | `confab_connections_closed_total` | counter | `by` (`server`, `client`), `code` |
//! | `confab_messages_received_total` | counter | |
//! | `confab_messages_stored_total` | counter | |
//! | `confab_messages_delivered_total` | counter | |
//! | `confab_deliveries_per_message` | histogram | |
//! | `confab_send_queue_depth_frames` | histogram | |
//! | `confab_slow_consumer_closes_total` | counter | |
//! | `confab_store_commit_duration_seconds` | histogram | |
//! | `confab_store_commit_batch_writes` | histogram | |
//! | `confab_history_reads_total` | counter | `kind` |
//! | `confab_rate_limited_total` | counter | `limit` |
//! | `confab_auth_refusals_total` | counter | `reason` |
//! | `confab_sign_ins_total` | counter | |
//! | `confab_sign_ups_total` | counter | |
//! | `process_resident_memory_bytes`, `process_virtual_memory_bytes` | gauge | |
//! | `process_open_fds`, `process_max_fds` | gauge | |
//! | `process_cpu_seconds_total` | counter | |
//! | `process_start_time_seconds` | gauge | |

mod histogram;

use std::sync::Arc;

use confab_shared::close;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use histogram::Buckets;

/// Every series: name, help text. The help texts are what a scrape shows after `# HELP`.
pub const DESCRIPTIONS: &[(&str, &str)] = &[
    ("confab_connections_open", "WebSocket connections open now."),
    (
        "confab_connections_opened_total",
        "WebSocket connections opened (upgraded) since the server started.",
    ),
    (
        "confab_connections_closed_total",
        "WebSocket connections ended, by who ended them (server, client) and the close \
         code; 1006 means no close frame (the socket broke), other a client's code outside \
         the known set.",
    ),
    (
        "confab_messages_received_total",
        "Chat messages clients sent (send requests that reached the hub, before its checks).",
    ),
    (
        "confab_messages_stored_total",
        "Chat messages committed to the store (a re-sent one stored before is not counted).",
    ),
    (
        "confab_messages_delivered_total",
        "Log entries (messages, edits, deletions, reactions) put into a recipient's send \
         queue, one per recipient.",
    ),
    (
        "confab_deliveries_per_message",
        "Recipients of each delivered log entry, observed once per fan-out.",
    ),
    (
        "confab_send_queue_depth_frames",
        "The deepest recipient send queue of each fan-out, in frames, after the push: \
         frames a connection has not taken for its socket yet.",
    ),
    (
        "confab_slow_consumer_closes_total",
        "Connections closed because their send queue overflowed (close code 4000).",
    ),
    (
        "confab_store_commit_duration_seconds",
        "Time one group commit of the store writer took (the transaction, fsync included \
         with --durability power).",
    ),
    (
        "confab_store_commit_batch_writes",
        "Writes (messages, changes, room and membership updates) in one group commit.",
    ),
    (
        "confab_history_reads_total",
        "History reads handed to the reader threads, by kind: join (the newest page), \
         resume (what a returning client missed), before (scrolling back), around \
         (opening a message far back).",
    ),
    (
        "confab_rate_limited_total",
        "Requests refused by a rate limit, by limit.",
    ),
    (
        "confab_auth_refusals_total",
        "Requests refused for who or where they came from, by reason: bad_credentials \
         (a sign-in with a wrong username or password), no_session (a socket or request \
         whose cookie is not a session), foreign_origin (a page on another site), \
         sign_up_refused (the sign-up policy or the invite said no).",
    ),
    ("confab_sign_ins_total", "Successful sign-ins."),
    (
        "confab_sign_ups_total",
        "Accounts created through the sign-up page.",
    ),
    (
        "process_resident_memory_bytes",
        "Resident memory of the server process, in bytes.",
    ),
    (
        "process_virtual_memory_bytes",
        "Virtual memory of the server process, in bytes.",
    ),
    (
        "process_open_fds",
        "File descriptors the server process has open (sockets included).",
    ),
    (
        "process_max_fds",
        "The server process's limit on open file descriptors.",
    ),
    (
        "process_cpu_seconds_total",
        "CPU time the server process used, user and system, in seconds.",
    ),
    (
        "process_start_time_seconds",
        "When the server process started, in seconds since the Unix epoch.",
    ),
];

/// The histograms, each with its buckets, chosen for what it measures. They are counted
/// by [`histogram::Buckets`], not by the exporter (its module says why).
const HISTOGRAMS: &[(&str, &[f64])] = &[
    ("confab_deliveries_per_message", DELIVERY_BUCKETS),
    ("confab_send_queue_depth_frames", QUEUE_BUCKETS),
    (
        "confab_store_commit_duration_seconds",
        COMMIT_SECONDS_BUCKETS,
    ),
    ("confab_store_commit_batch_writes", BATCH_BUCKETS),
];
const DELIVERY_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];
const QUEUE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0, 8192.0,
];
const COMMIT_SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// Who ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    // The order indexes `Metrics::connections_closed`.
    /// The server sent the close frame (its code says why).
    Server,
    /// The client closed, or its socket broke.
    Client,
}

/// The close codes the server closes with (`confab_shared::close`), counted under
/// their own number; 1006 when a connection ended without a close frame.
const SERVER_CODES: &[(u16, &str)] = &[
    (close::GOING_AWAY, "1001"),
    (close::PROTOCOL_ERROR, "1002"),
    (close::UNSUPPORTED_DATA, "1003"),
    (NO_CLOSE_FRAME, "1006"),
    (close::INVALID_PAYLOAD, "1007"),
    (close::POLICY_VIOLATION, "1008"),
    (close::MESSAGE_TOO_BIG, "1009"),
    (close::INTERNAL_ERROR, "1011"),
    (close::SLOW_CONSUMER, "4000"),
    (close::IDLE_TIMEOUT, "4001"),
    (close::SIGNED_OUT, "4002"),
    (close::ACCOUNT_DISABLED, "4003"),
];

/// The close codes a client ends with in practice: 1000 (normal), 1001 (going away: a
/// tab closed), 1005 (a close frame without a code), 1006 (no close frame: the socket
/// broke). Anything else a client sends counts as `other`.
const CLIENT_CODES: &[(u16, &str)] = &[
    (1000, "1000"),
    (1001, "1001"),
    (1005, "1005"),
    (1006, "1006"),
];

fn codes(by: ClosedBy) -> &'static [(u16, &'static str)] {
    match by {
        ClosedBy::Server => SERVER_CODES,
        ClosedBy::Client => CLIENT_CODES,
    }
}

/// The close code a client sent when its socket simply ended (RFC 6455 §7.1.5).
pub const NO_CLOSE_FRAME: u16 = 1006;
/// The close code of a close frame without one (RFC 6455 §7.1.5).
pub const NO_STATUS: u16 = 1005;

/// A rate limit that refused a request (the `limit` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Messages per connection (`--rate-limit-per-sec`).
    Messages,
    /// Room changes per person.
    RoomChanges,
    /// Edits per person.
    Edits,
    /// Pages of history (and searches) in flight per connection.
    HistoryReads,
    /// Sign-in and sign-up attempts (the throttle).
    SignIn,
    /// Bytes uploaded per person per day.
    Uploads,
    /// Invite links per person.
    Invites,
}

impl Limit {
    const ALL: [Limit; 7] = [
        Limit::Messages,
        Limit::RoomChanges,
        Limit::Edits,
        Limit::HistoryReads,
        Limit::SignIn,
        Limit::Uploads,
        Limit::Invites,
    ];

    fn label(self) -> &'static str {
        match self {
            Limit::Messages => "messages",
            Limit::RoomChanges => "room_changes",
            Limit::Edits => "edits",
            Limit::HistoryReads => "history_reads",
            Limit::SignIn => "sign_in",
            Limit::Uploads => "uploads",
            Limit::Invites => "invites",
        }
    }
}

/// Why a request was refused for who or where it came from (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    BadCredentials,
    NoSession,
    ForeignOrigin,
    SignUpRefused,
}

impl AuthRefusal {
    const ALL: [AuthRefusal; 4] = [
        AuthRefusal::BadCredentials,
        AuthRefusal::NoSession,
        AuthRefusal::ForeignOrigin,
        AuthRefusal::SignUpRefused,
    ];

    fn label(self) -> &'static str {
        match self {
            AuthRefusal::BadCredentials => "bad_credentials",
            AuthRefusal::NoSession => "no_session",
            AuthRefusal::ForeignOrigin => "foreign_origin",
            AuthRefusal::SignUpRefused => "sign_up_refused",
        }
    }
}

/// What kind of history read (the `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLabel {
    Join,
    Resume,
    Before,
    Around,
}

impl ReadLabel {
    const ALL: [ReadLabel; 4] = [
        ReadLabel::Join,
        ReadLabel::Resume,
        ReadLabel::Before,
        ReadLabel::Around,
    ];

    fn label(self) -> &'static str {
        match self {
            ReadLabel::Join => "join",
            ReadLabel::Resume => "resume",
            ReadLabel::Before => "before",
            ReadLabel::Around => "around",
        }
    }
}

/// The handles everything counts with. Cheap to share (`Arc`); [`Metrics::default`]
/// counts nothing.
#[derive(Debug)]
pub struct Metrics {
    pub connections_open: Gauge,
    pub connections_opened: Counter,
    /// Per [`ClosedBy`], one per code of [`codes`] and one for `other`.
    connections_closed: [Vec<Counter>; 2],
    pub messages_received: Counter,
    pub messages_stored: Counter,
    messages_delivered: Counter,
    deliveries_per_message: Histogram,
    send_queue_depth: Histogram,
    pub slow_consumer_closes: Counter,
    pub commit_seconds: Histogram,
    pub commit_batch: Histogram,
    history_reads: [Counter; 4],
    rate_limited: [Counter; 7],
    auth_refusals: [Counter; 4],
    pub sign_ins: Counter,
    pub sign_ups: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::register(&metrics::NoopRecorder, |_| Histogram::noop())
    }
}

/// Where a handle was registered from, for recorders that care (this one does not).
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl Metrics {
    /// Registers every counter and gauge with `recorder` and keeps the handles; each
    /// histogram's handle comes from `histogram`, given its name.
    fn register(recorder: &dyn Recorder, histogram: impl Fn(&'static str) -> Histogram) -> Metrics {
        for (name, help) in DESCRIPTIONS {
            let key = KeyName::from_const_str(name);
            let help = metrics::SharedString::const_str(help);
            match kind_of(name) {
                Kind::Counter => recorder.describe_counter(key, None, help),
                Kind::Gauge => recorder.describe_gauge(key, None, help),
                Kind::Histogram => {}
            }
        }
        let counter =
            |name: &'static str| recorder.register_counter(&Key::from_static_name(name), &METADATA);
        let labelled = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
        };
        let closed = "confab_connections_closed_total";
        let connections_closed = [ClosedBy::Server, ClosedBy::Client].map(|by| {
            let side = match by {
                ClosedBy::Server => "server",
                ClosedBy::Client => "client",
            };
            codes(by)
                .iter()
                .map(|(_, code)| *code)
                .chain(std::iter::once("other"))
                .map(|code| {
                    let labels = vec![
                        Label::from_static_parts("by", side),
                        Label::from_static_parts("code", code),
                    ];
                    labelled(closed, labels)
                })
                .collect()
        });
        Metrics {
            connections_open: recorder
                .register_gauge(&Key::from_static_name("confab_connections_open"), &METADATA),
            connections_opened: counter("confab_connections_opened_total"),
            connections_closed,
            messages_received: counter("confab_messages_received_total"),
            messages_stored: counter("confab_messages_stored_total"),
            messages_delivered: counter("confab_messages_delivered_total"),
            deliveries_per_message: histogram("confab_deliveries_per_message"),
            send_queue_depth: histogram("confab_send_queue_depth_frames"),
            slow_consumer_closes: counter("confab_slow_consumer_closes_total"),
            commit_seconds: histogram("confab_store_commit_duration_seconds"),
            commit_batch: histogram("confab_store_commit_batch_writes"),
            history_reads: ReadLabel::ALL.map(|k| {
                labelled(
                    "confab_history_reads_total",
                    vec![Label::from_static_parts("kind", k.label())],
                )
            }),
            rate_limited: Limit::ALL.map(|l| {
                labelled(
                    "confab_rate_limited_total",
                    vec![Label::from_static_parts("limit", l.label())],
                )
            }),
            auth_refusals: AuthRefusal::ALL.map(|r| {
                labelled(
                    "confab_auth_refusals_total",
                    vec![Label::from_static_parts("reason", r.label())],
                )
            }),
            sign_ins: counter("confab_sign_ins_total"),
            sign_ups: counter("confab_sign_ups_total"),
        }
    }

    /// A connection ended: `by` whom, with which close code.
    pub fn connection_closed(&self, by: ClosedBy, code: u16) {
        let known = codes(by);
        let at = known
            .iter()
            .position(|(c, _)| *c == code)
            .unwrap_or(known.len());
        if let Some(counter) = self.connections_closed[by as usize].get(at) {
            counter.increment(1);
        }
    }

    /// One log entry fanned out: to `recipients` send queues, the deepest holding
    /// `deepest` frames afterwards.
    pub fn fanned_out(&self, recipients: usize, deepest: usize) {
        self.messages_delivered.increment(recipients as u64);
        self.deliveries_per_message.record(recipients as f64);
        if recipients > 0 {
            self.send_queue_depth.record(deepest as f64);
        }
    }

    pub fn history_read(&self, kind: ReadLabel) {
        self.history_reads[kind as usize].increment(1);
    }

    pub fn rate_limited(&self, limit: Limit) {
        self.rate_limited[limit as usize].increment(1);
    }

    pub fn auth_refused(&self, reason: AuthRefusal) {
        self.auth_refusals[reason as usize].increment(1);
    }
}

enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A series' type, from its name: the conventions make it plain.
fn kind_of(name: &str) -> Kind {
    if name.ends_with("_total") {
        Kind::Counter
    } else if HISTOGRAMS.iter().any(|(h, _)| *h == name) {
        Kind::Histogram
    } else {
        Kind::Gauge
    }
}

/// The exporter's side: renders every series as Prometheus text.
#[derive(Debug, Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
    histograms: Arc<[Arc<Buckets>]>,
    process: Arc<Process>,
}

/// The process's own series, set from `/proc/self` before each scrape.
#[derive(Debug)]
struct Process {
    resident: Gauge,
    virtual_memory: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    cpu_seconds: Counter,
    start_time: Gauge,
}

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds a recorder for this server, registers every series with it, and returns the
/// handles to count with and the exporter to render them.
pub fn prometheus() -> (Arc<Metrics>, Exporter) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let histograms: Arc<[Arc<Buckets>]> = HISTOGRAMS
        .iter()
        .map(|(name, bounds)| {
            let help = DESCRIPTIONS
                .iter()
                .find_map(|(n, help)| (n == name).then_some(*help))
                .unwrap_or_default();
            Arc::new(Buckets::new(name, help, bounds))
        })
        .collect();
    let metrics = Arc::new(Metrics::register(&recorder, |name| {
        histograms
            .iter()
            .find(|h| h.name() == name)
            .map_or_else(Histogram::noop, |h| Histogram::from_arc(Arc::clone(h)))
    }));
    let gauge =
        |name: &'static str| recorder.register_gauge(&Key::from_static_name(name), &METADATA);
    let process = Arc::new(Process {
        resident: gauge("process_resident_memory_bytes"),
        virtual_memory: gauge("process_virtual_memory_bytes"),
        open_fds: gauge("process_open_fds"),
        max_fds: gauge("process_max_fds"),
        cpu_seconds: recorder.register_counter(
            &Key::from_static_name("process_cpu_seconds_total"),
            &METADATA,
        ),
        start_time: gauge("process_start_time_seconds"),
    });
    let exporter = Exporter {
        handle: recorder.handle(),
        histograms,
        process,
    };
    (metrics, exporter)
}

impl Exporter {
    /// Every series, as Prometheus text (format 0.0.4).
    pub fn render(&self) -> String {
        self.process.refresh();
        let mut text = self.handle.render();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for histogram in self.histograms.iter() {
            histogram.render(&mut text);
        }
        text
    }
}

/// Linux reports CPU times in `/proc` in clock ticks of 1/100 s (`USER_HZ`, fixed for
/// user space whatever the kernel's own tick).
const TICKS_PER_SEC: f64 = 100.0;

impl Process {
    /// Sets the process's series from `/proc/self`; leaves a series as it was when its
    /// file cannot be read (not Linux, a hardened `/proc`).
    fn refresh(&self) {
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let kib = |field: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            };
            if let Some(v) = kib("VmRSS:") {
                self.resident.set(v * 1024.0);
            }
            if let Some(v) = kib("VmSize:") {
                self.virtual_memory.set(v * 1024.0);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory's own descriptor, open while it is read, is not counted.
            self.open_fds.set(dir.count().saturating_sub(1) as f64);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits")
            && let Some(max) = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<f64>().ok())
        {
            self.max_fds.set(max);
        }
        if let Some((cpu, start)) = stat_times() {
            self.cpu_seconds.absolute(cpu);
            self.start_time.set(start);
        }
    }
}

/// CPU time used (whole seconds, as the counter holds integers) and start time (seconds
/// since the epoch), from `/proc/self/stat` and the boot time in `/proc/stat`.
fn stat_times() -> Option<(u64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count fields
    // after its closing one, where field 3 is the first.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let cpu = (field(14)? + field(15)?) / TICKS_PER_SEC;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())?;
    let start = boot + field(22)? / TICKS_PER_SEC;
    Some((cpu as u64, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_described_and_named_by_the_conventions() {
        let (metrics, exporter) = prometheus();
        metrics.connection_closed(ClosedBy::Server, 4000);
        metrics.connection_closed(ClosedBy::Server, close::ACCOUNT_DISABLED);
        metrics.connection_closed(ClosedBy::Client, 3999);
        metrics.fanned_out(3, 2);
        let text = exporter.render();
        for (name, _) in DESCRIPTIONS {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} is described:\n{text}"
            );
            assert!(
                name.starts_with("confab_") || name.starts_with("process_"),
                "{name}"
            );
        }
        assert!(text.contains(r#"confab_connections_closed_total{by="server",code="4000"} 1"#));
        assert!(text.contains(r#"confab_connections_closed_total{by="server",code="4003"} 1"#));
        assert!(text.contains(r#"confab_connections_closed_total{by="client",code="other"} 1"#));
        assert!(text.contains("confab_messages_delivered_total 3"), "{text}");
        assert!(
            text.contains("confab_deliveries_per_message_count 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"confab_send_queue_depth_frames_bucket{le="2"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn each_close_code_is_labelled_with_its_own_number() {
        for (code, label) in SERVER_CODES.iter().chain(CLIENT_CODES) {
            assert_eq!(code.to_string(), *label);
        }
    }

    #[test]
    fn without_an_exporter_nothing_is_counted_and_nothing_fails() {
        let metrics = Metrics::default();
        metrics.fanned_out(10, 10);
        metrics.connection_closed(ClosedBy::Client, NO_CLOSE_FRAME);
        metrics.rate_limited(Limit::Invites);
    }
}
