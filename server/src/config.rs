//! Server configuration: every setting is a command-line flag with an environment
//! variable of the same meaning, so the same binary suits a terminal, systemd and CI.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    path::PathBuf,
    time::Duration,
};

use clap::{Parser, Subcommand};

use confab_shared::api::SignUpPolicy;

use crate::{
    invites::InviteLimits,
    store::{Database, Durability, StoreError},
};

/// Confab chat server: serves the web client and the chat WebSocket on one port.
#[derive(Debug, Clone, Parser)]
#[command(name = "confab-server", version, about)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "CONFAB_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,

    /// Folder with the trunk-built client (index.html and its assets), served instead of
    /// the client built into the binary (a release build). Without this flag: the
    /// built-in client, else `dist` if it holds one. When there is no client the server
    /// still runs the chat socket, for the `trunk serve` dev flow.
    #[arg(long, env = "CONFAB_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    /// Folder of the embedded database and of shared files (created on first start).
    #[arg(long, env = "CONFAB_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,

    /// Let people in without an account, as guests: they pick a display name, are
    /// marked as guests, and can use public rooms only.
    #[arg(long, env = "CONFAB_ALLOW_GUESTS")]
    pub allow_guests: bool,

    /// Who may create an account: `open` (anyone), `invite` (only with an invite link
    /// that an administrator, or a member with `--members-invite`, made) or `closed`
    /// (nobody; accounts are made with `confab-server admin create`). Guests are let in
    /// or not by `--allow-guests` alone.
    #[arg(long, env = "CONFAB_SIGN_UP", default_value = "open")]
    pub sign_up: SignUpPolicy,

    /// Let every member create invite links, not only administrators.
    #[arg(long, env = "CONFAB_MEMBERS_INVITE")]
    pub members_invite: bool,

    /// Longest an invite link may stay good, in days (one asked without a lifetime
    /// lasts 7 days, or this if shorter).
    #[arg(long, env = "CONFAB_INVITE_MAX_DAYS", default_value = "30")]
    pub invite_max_days: NonZeroU32,

    /// How long a password reset link made by an administrator (`admin reset-password`,
    /// or the admin page) stays good, in hours. It works once.
    #[arg(long, env = "CONFAB_PASSWORD_RESET_HOURS", default_value = "24")]
    pub password_reset_hours: NonZeroU32,

    /// Most accounts one invite link may create (one asked without a number creates 1).
    #[arg(long, env = "CONFAB_INVITE_MAX_USES", default_value = "100")]
    pub invite_max_uses: NonZeroU32,

    /// Most unexpired invite links one person may hold (used up or not); more are
    /// refused until one expires or is revoked.
    #[arg(long, env = "CONFAB_INVITES_PER_PERSON", default_value = "20")]
    pub invites_per_person: NonZeroU32,

    /// Mark the session cookie `Secure` (sent over HTTPS only). It is marked anyway
    /// when the server serves TLS itself (`--tls-cert`) and when a proxy in front says
    /// the page came over TLS (`X-Forwarded-Proto: https`).
    #[arg(long, env = "CONFAB_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// PEM file with the certificate chain (the server's own certificate first, then
    /// any intermediates): with `--tls-key`, the server serves HTTPS and `wss://` on
    /// `--listen` itself, without a proxy in front. Loaded again on SIGHUP and when the
    /// file changes (see `--tls-watch-secs`), for the connections opened from then on.
    #[arg(long, env = "CONFAB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the private key of `--tls-cert` (PKCS#8, RSA or EC).
    #[arg(long, env = "CONFAB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Seconds between two looks at the modification time and size of `--tls-cert` and
    /// `--tls-key`: when either changed, both are loaded again, as on SIGHUP. 0: on
    /// SIGHUP only.
    #[arg(long, env = "CONFAB_TLS_WATCH_SECS", default_value_t = 5)]
    pub tls_watch_secs: u64,

    /// Also listen on this address (`0.0.0.0:80`, typically) for plain HTTP, and answer
    /// every request there with a permanent redirect (308) to the same path and query
    /// over HTTPS: on `--public-url` when it is an `https://` URL, else on the host the
    /// request named, at the port of `--listen`. Needs `--tls-cert`.
    #[arg(long, env = "CONFAB_HTTP_REDIRECT_LISTEN", requires = "tls_cert")]
    pub http_redirect_listen: Option<SocketAddr>,

    /// With `--tls-cert`: the `max-age` of the `Strict-Transport-Security` header, in
    /// seconds (a year by default), after which browsers that got a page over HTTPS go
    /// on using HTTPS for that host name without trying plain HTTP first. Not sent to
    /// requests addressed by IP address or to `localhost` (it would hold every port of
    /// it). 0: not sent.
    #[arg(long, env = "CONFAB_HSTS_MAX_AGE_SECS", default_value_t = 31_536_000)]
    pub hsts_max_age_secs: u64,

    /// Reverse proxies in front of the server (their IP addresses): the client address in
    /// their `X-Forwarded-For` is used for the per-address limits (connections, sign-in
    /// attempts) instead of the proxy's own, and their `X-Forwarded-Host` and
    /// `X-Forwarded-Proto` are believed (from anyone else they are ignored). Repeat the
    /// flag, or separate with commas.
    #[arg(
        long = "trusted-proxy",
        env = "CONFAB_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,

    /// Sign-in and sign-up attempts allowed from one IP address (an IPv6 client counts as
    /// its /64) per minute.
    #[arg(long, env = "CONFAB_SIGN_IN_PER_IP_PER_MIN", default_value = "20")]
    pub sign_in_per_ip_per_min: NonZeroU32,

    /// Wrong passwords for one username from one address (an IPv6 client counts as its
    /// /64), or from one known device (a browser with a device cookie for that username),
    /// per minute; past that, attempts from there get 429 until the count has leaked back.
    #[arg(long, env = "CONFAB_SIGN_IN_PER_USER_IP_PER_MIN", default_value = "5")]
    pub sign_in_per_user_ip_per_min: NonZeroU32,

    /// Wrong passwords for one username from everywhere per minute before its sign-in
    /// attempts are slowed (never refused): each waits a second per wrong password over
    /// this, at most `--sign-in-max-delay-secs`. Known devices are never slowed.
    #[arg(long, env = "CONFAB_SIGN_IN_PER_USER_PER_MIN", default_value = "10")]
    pub sign_in_per_user_per_min: NonZeroU32,

    /// The longest a slowed sign-in attempt waits, in seconds.
    #[arg(long, env = "CONFAB_SIGN_IN_MAX_DELAY_SECS", default_value = "10")]
    pub sign_in_max_delay_secs: u64,

    /// What a committed message survives: `process` (a crash or kill of the server) or
    /// `power` (also power loss; waits for fsync on every group commit).
    #[arg(long, env = "CONFAB_DURABILITY", value_enum, default_value = "process")]
    pub durability: Durability,

    /// Extra page origins allowed to open the chat socket, such as
    /// `https://chat.example.com` behind a proxy. Same-origin pages are always allowed.
    /// Repeat the flag, or separate values with commas in the variable.
    #[arg(
        long = "allowed-origin",
        env = "CONFAB_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// The URL people open to reach the server, such as `https://chat.example.com`.
    /// Its host name is answered to (besides IP addresses and `localhost`; any other
    /// `Host` gets 421, against DNS rebinding), and its origin may open the chat socket;
    /// a page on the same host under another scheme or port may not.
    #[arg(long, env = "CONFAB_PUBLIC_URL", value_parser = crate::http::PublicUrl::parse)]
    pub public_url: Option<crate::http::PublicUrl>,

    /// More host names the server answers to (it always answers to IP addresses and
    /// `localhost`; other `Host` values get 421). Repeat the flag, or separate values
    /// with commas in the variable.
    #[arg(
        long = "allowed-host",
        env = "CONFAB_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,

    /// Frames a connection may have queued for sending while its socket is full (the
    /// client is not reading) before it counts as too slow and is disconnected (close code
    /// 4000).
    #[arg(long, env = "CONFAB_QUEUE_CAPACITY", default_value_t = 1024)]
    pub queue_capacity: usize,

    /// Bytes a connection may have queued for sending (and taken but not yet written)
    /// while its socket is full, before it counts as too slow and is disconnected (close
    /// code 4000). Larger than the largest single reply (a page of history is at most
    /// 256 KiB of messages plus one), so one reply always fits.
    #[arg(long, env = "CONFAB_QUEUE_BYTES", default_value_t = 1024 * 1024)]
    pub queue_bytes: usize,

    /// Writes that may wait for the store writer before sends are refused as
    /// `unavailable` (access changes are never refused for it: they wait regardless).
    #[arg(long, env = "CONFAB_WRITER_QUEUE", default_value_t = 65_536)]
    pub writer_queue: usize,

    /// Pages of history (`fetch_history`, `fetch_around`) and searches one connection
    /// may have waiting to be read at once; more are refused with `rate_limited` until
    /// one is answered, so one client cannot fill the read queue that everyone's joins
    /// wait in.
    #[arg(long, env = "CONFAB_HISTORY_READS_PER_CONNECTION", default_value_t = 4)]
    pub history_reads_per_connection: usize,

    /// Seconds between the server's pings to each client.
    #[arg(long, env = "CONFAB_PING_INTERVAL_SECS", default_value_t = 10)]
    pub ping_interval_secs: u64,

    /// Seconds of silence (no frame, not even a pong) after which a client is dropped.
    #[arg(long, env = "CONFAB_IDLE_TIMEOUT_SECS", default_value_t = 30)]
    pub idle_timeout_secs: u64,

    /// Most WebSocket connections the server holds; more are refused with 503.
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Most WebSocket connections from one IP address (an IPv6 client counts as its /64);
    /// more are refused with 429.
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS_PER_IP", default_value_t = 100)]
    pub max_connections_per_ip: usize,

    /// Messages per second one connection may send, sustained.
    #[arg(long, env = "CONFAB_RATE_LIMIT_PER_SEC", default_value_t = 20.0)]
    pub rate_limit_per_sec: f64,

    /// Messages one connection may send at once before the per-second rate applies.
    /// Going on sending another burst's worth while refused closes the connection (1008).
    #[arg(long, env = "CONFAB_RATE_LIMIT_BURST", default_value_t = 60.0)]
    pub rate_limit_burst: f64,

    /// Rooms one connection may be in at once.
    #[arg(long, env = "CONFAB_MAX_ROOMS_PER_CONNECTION", default_value_t = 100)]
    pub max_rooms_per_connection: usize,

    /// Threads that read history for joins, resumes and scrolling back, each with its
    /// own read-only database connection, so those reads never hold up the hub.
    #[arg(long, env = "CONFAB_READ_THREADS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub read_threads: u16,

    /// History reads that may wait for a reader thread; past that a join or scroll back
    /// is refused as `unavailable` (retry).
    #[arg(long, env = "CONFAB_READ_QUEUE", default_value_t = 16384)]
    pub read_queue: usize,

    /// Seconds a client has to send its HTTP request head (the WebSocket handshake)
    /// before the connection is dropped: slow-trickling clients cannot hold sockets.
    #[arg(long, env = "CONFAB_HANDSHAKE_TIMEOUT_SECS", default_value_t = 5)]
    pub handshake_timeout_secs: u64,

    /// Seconds a client has to send a whole request body once its head arrived; a
    /// slower one gets 408 and its connection is closed.
    #[arg(long, env = "CONFAB_BODY_TIMEOUT_SECS", default_value_t = 10)]
    pub body_timeout_secs: u64,

    /// Most HTTP connections open at once before any upgrade to a WebSocket (page and
    /// asset loads, account requests, handshakes in progress); more are answered 503
    /// and closed as they are accepted.
    #[arg(long, env = "CONFAB_MAX_HTTP_CONNECTIONS", default_value_t = 2048)]
    pub max_http_connections: usize,

    /// Most HTTP connections open at once from one IP address (an IPv6 client counts
    /// as its /64) before any upgrade; more are answered 429 and closed. A
    /// `--trusted-proxy` counts in the total only.
    #[arg(
        long,
        env = "CONFAB_MAX_HTTP_CONNECTIONS_PER_IP",
        default_value_t = 100
    )]
    pub max_http_connections_per_ip: usize,

    /// Most rooms the server holds; creating more is refused.
    #[arg(long, env = "CONFAB_MAX_ROOMS", default_value_t = 1000)]
    pub max_rooms: usize,

    /// Typing indicators one connection may have forwarded per second, over all its
    /// rooms (on top of one per room every 1.5 s); extra ones are dropped silently.
    #[arg(long, env = "CONFAB_MAX_TYPING_PER_SEC", default_value_t = 4)]
    pub max_typing_per_sec: u32,

    /// Milliseconds between two room-list updates a session receives: rooms created,
    /// renamed or deleted by others meanwhile come together in one `rooms_changed`.
    #[arg(long, env = "CONFAB_ROOM_LIST_INTERVAL_MS", default_value_t = 1000)]
    pub room_list_interval_ms: u64,

    /// Room changes (creating, renaming, deleting rooms, inviting, removing members) one
    /// person may make per minute, sustained; more are refused as `rate_limited`.
    #[arg(long, env = "CONFAB_ROOM_CHANGES_PER_MIN", default_value_t = 30)]
    pub room_changes_per_min: u32,

    /// Room changes one person may make at once, before the per-minute rate applies.
    #[arg(long, env = "CONFAB_ROOM_CHANGES_BURST", default_value_t = 10)]
    pub room_changes_burst: u32,

    /// Message edits one person may make per minute, sustained, over all their sessions;
    /// more are refused as `rate_limited`.
    #[arg(long, env = "CONFAB_EDITS_PER_MIN", default_value_t = 30)]
    pub edits_per_min: u32,

    /// Message edits one person may make at once, before the per-minute rate applies.
    #[arg(long, env = "CONFAB_EDITS_BURST", default_value_t = 10)]
    pub edits_burst: u32,

    /// Largest file one upload may be, in bytes; larger ones are refused with 413.
    #[arg(long, env = "CONFAB_MAX_FILE_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_file_bytes: u64,

    /// Bytes one person may upload in any 24 hours; past that uploads are refused with
    /// 429 until enough of the day's uploads are older than a day. Deleting a file does
    /// not give its bytes back.
    #[arg(long, env = "CONFAB_UPLOAD_BYTES_PER_DAY", default_value_t = 500 * 1024 * 1024)]
    pub upload_bytes_per_day: u64,

    /// Bytes all stored files may take together (each content counted once); past that
    /// uploads are refused with 507.
    #[arg(long, env = "CONFAB_MAX_FILES_BYTES", default_value_t = 10 * 1024 * 1024 * 1024)]
    pub max_files_bytes: u64,

    /// Seconds between two sweeps of the file store, which remove uploads never shared
    /// within a day and the bytes of files nothing references any more (their message
    /// or room was deleted).
    #[arg(long, env = "CONFAB_FILE_SWEEP_INTERVAL_SECS", default_value_t = 600)]
    pub file_sweep_interval_secs: u64,

    /// Largest image (width × height, in pixels) the server decodes to make a preview;
    /// a larger one is shared as a plain file.
    #[arg(long, env = "CONFAB_PREVIEW_MAX_PIXELS", default_value_t = 50_000_000)]
    pub preview_max_pixels: u64,

    /// Most memory, in bytes, decoding one image for its preview may take (the decoder's
    /// allocations and the decoded image); past it the image is shared as a plain file.
    #[arg(long, env = "CONFAB_PREVIEW_MAX_DECODE_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub preview_max_decode_bytes: u64,

    /// Image previews decoded at once; more uploads wait their turn.
    #[arg(long, env = "CONFAB_PREVIEW_DECODES", default_value_t = 2)]
    pub preview_decodes: usize,

    /// Milliseconds one search may read the index before it answers with what it found
    /// (`more` set) or, having found nothing, with `invalid_query`.
    #[arg(long, env = "CONFAB_SEARCH_BUDGET_MS", default_value_t = 1000)]
    pub search_budget_ms: u64,

    /// Keep everything in this PostgreSQL database (`postgres://user:password@host/db`)
    /// instead of the embedded SQLite file: what the nodes of a cluster share. Its
    /// schema is created or upgraded at start. See docs/CLUSTER.md.
    #[arg(long, env = "CONFAB_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Most connections to PostgreSQL one node keeps for sign-ins, uploads and
    /// downloads (the message writer and each reader thread have one more of their
    /// own).
    #[arg(long, env = "CONFAB_DATABASE_POOL", default_value_t = 16)]
    pub database_pool: u32,

    /// Redis (`redis://host:port`) through which the nodes of a cluster pass each
    /// other new messages, presence and typing. Needs `--database-url`.
    #[arg(long, env = "CONFAB_REDIS_URL", requires = "database_url")]
    pub redis_url: Option<String>,

    /// On a node of a cluster: how long, in milliseconds, a message waits for the ones
    /// before it to arrive from other nodes before they are read from PostgreSQL.
    #[arg(long, env = "CONFAB_CLUSTER_GAP_GRACE_MS", default_value_t = 100)]
    pub cluster_gap_grace_ms: u64,

    /// On a node of a cluster: how often, in milliseconds, every room's latest message
    /// in PostgreSQL is compared with what the node delivered (finds what Redis lost).
    #[arg(long, env = "CONFAB_CLUSTER_CHECK_MS", default_value_t = 2000)]
    pub cluster_check_ms: u64,

    /// The same while Redis is unreachable (or not configured): how late other nodes'
    /// messages arrive meanwhile.
    #[arg(long, env = "CONFAB_CLUSTER_POLL_MS", default_value_t = 500)]
    pub cluster_poll_ms: u64,

    /// On a node of a cluster: seconds after which the people online on a node that
    /// stopped (killed, cut off) count as gone on the others. Each node renews its
    /// people every third of it.
    #[arg(long, env = "CONFAB_CLUSTER_PRESENCE_TTL_SECS", default_value_t = 15)]
    pub cluster_presence_ttl_secs: u64,

    /// Serve `GET /metrics` (Prometheus text format) on this address, on a listener of
    /// its own that asks for no token: bind it where only your Prometheus reaches it
    /// (`127.0.0.1:9100`, a private network). Off when absent.
    #[arg(long, env = "CONFAB_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Serve `GET /metrics` on the main port too, to requests that carry
    /// `Authorization: Bearer <this token>` (others get 401). Prefer the environment
    /// variable: a flag's value shows in the process list. Off when absent.
    #[arg(long, env = "CONFAB_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// How log lines are written: `text` for people, `json` (one object per line) for
    /// log shippers. `RUST_LOG` chooses which lines either way.
    #[arg(long, env = "CONFAB_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Delete messages older than this many days (with their reactions, search
    /// entries and the files only they share), in the background, in small batches.
    /// Off when absent: history is kept for ever.
    #[arg(long, env = "CONFAB_RETAIN_DAYS")]
    pub retain_days: Option<NonZeroU32>,

    /// With `--retain-days`: messages deleted per transaction. The message writer waits
    /// for at most one such transaction.
    #[arg(long, env = "CONFAB_RETAIN_BATCH", default_value_t = 200)]
    pub retain_batch: usize,

    /// With `--retain-days`: milliseconds of pause after each batch, so that deleting
    /// a long history takes the disk only a little at a time.
    #[arg(long, env = "CONFAB_RETAIN_PAUSE_MS", default_value_t = 100)]
    pub retain_pause_ms: u64,

    /// Without a subcommand, the server runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The format of the log (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (with
    /// `message`), and `span`/`spans` with the HTTP request's `request_id`.
    Json,
}

/// Tasks other than serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Administer the server's database (the data directory's, or `--database-url`'s):
    /// accounts, invites, and the move from the one to the other.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Copy the SQLite store of `--data-dir` (the database, shared files and the
    /// device cookie key) into the new directory DEST, while the server runs or not:
    /// a consistent snapshot, read a few pages at a time so chat goes on. With
    /// `--database-url` it refuses: use pg_dump.
    Backup {
        /// A directory that does not exist yet (or is empty).
        dest: PathBuf,
        /// Database pages copied per step.
        #[arg(long, default_value_t = 256)]
        step_pages: u32,
        /// Milliseconds of pause between two steps.
        #[arg(long, default_value_t = 5)]
        step_pause_ms: u64,
    },
    /// Put a backup made by `backup` into `--data-dir`. The server must be stopped.
    /// Refuses a data directory that holds anything unless `--force`, which moves the
    /// old one aside (next to it, its name suffixed with the time).
    Restore {
        /// A directory written by `confab-server backup`.
        src: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Write the history of one room (`--room`) or of every room as JSON lines:
    /// a line per room, then a line per message.
    Export {
        /// The room's id (as in its URL); every room when absent.
        #[arg(long)]
        room: Option<String>,
        /// The file to write; standard output when absent.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Read an export back into the store of `--data-dir` (new or not): rooms and
    /// placeholder accounts are made as needed; messages already there are skipped,
    /// so importing twice changes nothing. The server must be stopped.
    Import {
        /// A file written by `confab-server export`.
        file: PathBuf,
        /// A data directory or backup that holds the shared files' bytes (in its
        /// `files/`), for the files this store does not have.
        #[arg(long)]
        files_from: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Create an administrator account (the first account of a server, typically).
    /// The password is read from the terminal without echo, or from standard input
    /// when that is not a terminal.
    Create {
        username: String,
        /// Shown to others; the username when absent.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Create an invite link and print it (its path: it goes after the server's
    /// address). For servers run with `--sign-up invite`.
    Invite {
        /// How many accounts it may create (1 when absent; at most `--invite-max-uses`).
        #[arg(long)]
        uses: Option<u32>,
        /// How long it stays good: `30m`, `12h`, `7d` (7 days when absent; at most
        /// `--invite-max-days`).
        #[arg(long, value_parser = crate::invites::parse_lifetime)]
        expires_in: Option<Duration>,
    },
    /// Copy everything of the SQLite store in `--data-dir` (messages, rooms, accounts,
    /// sessions, invites, files, the store's identity) into the empty PostgreSQL
    /// database of `--database-url`, to run a cluster on it. Stop the server first.
    /// The data directory stays as it is (a store from an older version is first
    /// brought to this one's schema, as starting the server would).
    MigrateToPostgres,
    /// List accounts (username, display name, administrator?, disabled?, created, last
    /// sign-in), those whose username or display name contains QUERY if given.
    Users { query: Option<String> },
    /// Disable an account: it cannot sign in, its sessions end, and a server running on
    /// this data directory closes its connections at once (close code 4003).
    Disable { username: String },
    /// Enable a disabled account again.
    Enable { username: String },
    /// Print a one-time link with which the person sets a new password in the web
    /// client (good for `--password-reset-hours`). Their sessions end when it is used.
    ResetPassword { username: String },
    /// Make an account an administrator.
    Grant { username: String },
    /// Make an administrator an ordinary member again.
    Revoke { username: String },
    /// List rooms with their kind, members, messages and last activity.
    Rooms,
    /// Delete a room with its messages and files (through the running server if there
    /// is one on this data directory, so its members see it go).
    DeleteRoom { room: String },
    /// Show how many accounts, rooms, messages and files the server holds, and how big
    /// its database is.
    Stats,
    /// Show the audit log of administrators' actions, newest first.
    Audit,
}

impl Config {
    /// Opens the database these flags name (connecting to and migrating PostgreSQL if
    /// `--database-url` is given). Blocking.
    pub fn database(&self) -> Result<Database, StoreError> {
        match &self.database_url {
            Some(url) => Database::postgres(url, self.database_pool),
            None => Ok(Database::sqlite(&self.data_dir, self.durability)),
        }
    }

    /// What `--retain-days` and its companions ask for; `None` when retention is off.
    pub fn retention(&self) -> Option<crate::retention::Settings> {
        self.retain_days.map(|days| crate::retention::Settings {
            keep: Duration::from_secs(u64::from(days.get()) * 86_400),
            batch: self.retain_batch.max(1),
            pause: Duration::from_millis(self.retain_pause_ms),
        })
    }

    /// A node's cluster tunables, from their flags.
    pub fn cluster_settings(&self) -> crate::hub::ClusterSettings {
        crate::hub::ClusterSettings {
            gap_grace: Duration::from_millis(self.cluster_gap_grace_ms.max(1)),
            look_every: Duration::from_millis(self.cluster_check_ms.max(10)),
            look_every_down: Duration::from_millis(self.cluster_poll_ms.max(10)),
            ..crate::hub::ClusterSettings::default()
        }
    }

    /// See `--cluster-presence-ttl-secs`.
    pub fn cluster_presence_ttl(&self) -> Duration {
        Duration::from_secs(self.cluster_presence_ttl_secs.max(3))
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs.max(1))
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs.max(1))
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs.max(1))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    /// The certificate and key files, when the server serves TLS itself.
    pub fn tls_files(&self) -> Option<crate::tls::CertFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }

    /// How often the certificate files are looked at (`--tls-watch-secs`); `None`: never.
    pub fn tls_watch(&self) -> Option<Duration> {
        (self.tls_watch_secs > 0).then(|| Duration::from_secs(self.tls_watch_secs))
    }

    /// The `Strict-Transport-Security` value (`--hsts-max-age-secs`); `None`: not sent.
    pub fn hsts(&self) -> Option<axum::http::HeaderValue> {
        if self.hsts_max_age_secs == 0 {
            return None;
        }
        axum::http::HeaderValue::from_str(&format!("max-age={}", self.hsts_max_age_secs)).ok()
    }

    /// The limits on files, from their flags.
    pub fn file_limits(&self) -> crate::files::FileLimits {
        crate::files::FileLimits {
            max_file_bytes: self.max_file_bytes,
            bytes_per_day: self.upload_bytes_per_day,
            max_total_bytes: self.max_files_bytes,
            preview: crate::files::preview::Bounds {
                max_pixels: self.preview_max_pixels,
                max_decode_bytes: self.preview_max_decode_bytes,
            },
            preview_decodes: self.preview_decodes.max(1),
        }
    }

    /// How long a password reset link stays good.
    pub fn password_reset_lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.password_reset_hours.get()) * 3600)
    }

    /// The caps on invite links, from their flags.
    pub fn invite_limits(&self) -> InviteLimits {
        InviteLimits {
            max_lifetime: Duration::from_secs(u64::from(self.invite_max_days.get()) * 86_400),
            max_uses: self.invite_max_uses.get(),
            per_person: self.invites_per_person.get(),
        }
    }

    /// A configuration with every default, listening on `listen` and storing in
    /// `data_dir`: what tests start from.
    pub fn with_listen(listen: SocketAddr, data_dir: PathBuf) -> Self {
        let mut config = Config::parse_from(["confab-server"]);
        config.listen = listen;
        config.data_dir = data_dir;
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn flags_parse() {
        let c = Config::try_parse_from([
            "confab-server",
            "--listen",
            "0.0.0.0:8000",
            "--allowed-origin",
            "https://a.example",
            "--allowed-origin",
            "https://b.example",
        ])
        .expect("parses");
        assert_eq!(c.listen, "0.0.0.0:8000".parse().expect("addr"));
        assert_eq!(
            c.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(c.static_dir, None, "the built-in client, else dist/");
        assert!(!c.allow_guests, "guests are off by default");
        assert_eq!(c.max_file_bytes, 25 * 1024 * 1024);
        assert_eq!(c.upload_bytes_per_day, 500 * 1024 * 1024);
        assert_eq!(c.max_files_bytes, 10 * 1024 * 1024 * 1024);
        assert_eq!(c.file_sweep_interval_secs, 600);
        assert!(c.metrics_listen.is_none() && c.metrics_token.is_none());
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(c.command.is_none());
    }

    #[test]
    fn admin_create_parses_with_the_data_dir_anywhere() {
        let c = Config::try_parse_from([
            "confab-server",
            "admin",
            "create",
            "ada",
            "--display-name",
            "Ada L",
            "--data-dir",
            "/tmp/x",
        ])
        .expect("parses");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert!(matches!(
            c.command,
            Some(Command::Admin(AdminCommand::Create { username, display_name: Some(d) }))
                if username == "ada" && d == "Ada L"
        ));
    }

    #[test]
    fn the_administrators_commands_parse() {
        let parse = |args: &[&str]| {
            Config::try_parse_from(["confab-server"].iter().chain(args))
                .expect("parses")
                .command
        };
        assert!(matches!(
            parse(&["admin", "users"]),
            Some(Command::Admin(AdminCommand::Users { query: None }))
        ));
        assert!(matches!(
            parse(&["admin", "users", "bo"]),
            Some(Command::Admin(AdminCommand::Users { query: Some(q) })) if q == "bo"
        ));
        assert!(matches!(
            parse(&["admin", "disable", "bob"]),
            Some(Command::Admin(AdminCommand::Disable { username })) if username == "bob"
        ));
        assert!(matches!(
            parse(&["admin", "reset-password", "bob"]),
            Some(Command::Admin(AdminCommand::ResetPassword { username })) if username == "bob"
        ));
        assert!(matches!(
            parse(&["admin", "delete-room", "plans"]),
            Some(Command::Admin(AdminCommand::DeleteRoom { room })) if room == "plans"
        ));
        assert!(Config::try_parse_from(["confab-server", "admin", "disable"]).is_err());
        let c = Config::try_parse_from(["confab-server", "--password-reset-hours", "2"])
            .expect("parses");
        assert_eq!(c.password_reset_lifetime(), Duration::from_secs(7200));
        assert!(Config::try_parse_from(["confab-server", "--password-reset-hours", "0"]).is_err());
    }

    #[test]
    fn sign_up_is_open_by_default_and_takes_three_policies() {
        let c = Config::try_parse_from(["confab-server"]).expect("parses");
        assert_eq!(c.sign_up, SignUpPolicy::Open);
        assert!(!c.members_invite);
        for (flag, policy) in [
            ("open", SignUpPolicy::Open),
            ("invite", SignUpPolicy::Invite),
            ("closed", SignUpPolicy::Closed),
        ] {
            let c = Config::try_parse_from(["confab-server", "--sign-up", flag]).expect("parses");
            assert_eq!(c.sign_up, policy);
        }
        assert!(Config::try_parse_from(["confab-server", "--sign-up", "sometimes"]).is_err());
        let c = Config::try_parse_from([
            "confab-server",
            "admin",
            "invite",
            "--uses",
            "3",
            "--expires-in",
            "12h",
        ])
        .expect("parses");
        assert!(matches!(
            c.command,
            Some(Command::Admin(AdminCommand::Invite { uses: Some(3), expires_in: Some(d) }))
                if d == Duration::from_secs(12 * 3_600)
        ));
    }

    #[test]
    fn migrate_to_postgres_parses_with_both_places() {
        let c = Config::try_parse_from([
            "confab-server",
            "admin",
            "migrate-to-postgres",
            "--data-dir",
            "/srv/confab",
            "--database-url",
            "postgres://confab@db/confab",
        ])
        .expect("parses");
        assert_eq!(c.data_dir, PathBuf::from("/srv/confab"));
        assert_eq!(
            c.database_url.as_deref(),
            Some("postgres://confab@db/confab")
        );
        assert!(matches!(
            c.command,
            Some(Command::Admin(AdminCommand::MigrateToPostgres))
        ));
    }

    #[test]
    fn tls_flags_come_in_pairs() {
        let c = Config::try_parse_from(["confab-server"]).expect("parses");
        assert!(c.tls_files().is_none());
        assert!(Config::try_parse_from(["confab-server", "--tls-cert", "c.pem"]).is_err());
        assert!(Config::try_parse_from(["confab-server", "--tls-key", "k.pem"]).is_err());
        assert!(
            Config::try_parse_from(["confab-server", "--http-redirect-listen", "0.0.0.0:80"])
                .is_err(),
            "a redirect to HTTPS needs HTTPS"
        );
        let c = Config::try_parse_from([
            "confab-server",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--http-redirect-listen",
            "0.0.0.0:80",
        ])
        .expect("parses");
        assert_eq!(
            c.tls_files(),
            Some(crate::tls::CertFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        assert_eq!(c.tls_watch(), Some(Duration::from_secs(5)));
        assert_eq!(
            c.hsts().as_ref().map(|h| h.as_bytes()),
            Some(&b"max-age=31536000"[..])
        );
        let c = Config::try_parse_from([
            "confab-server",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--hsts-max-age-secs",
            "0",
            "--tls-watch-secs",
            "0",
        ])
        .expect("parses");
        assert!(c.hsts().is_none());
        assert!(c.tls_watch().is_none());
    }

    #[test]
    fn retention_is_off_unless_asked_for() {
        let c = Config::try_parse_from(["confab-server"]).expect("parses");
        assert_eq!(c.retention(), None);
        let c = Config::try_parse_from([
            "confab-server",
            "--retain-days",
            "30",
            "--retain-batch",
            "0",
        ])
        .expect("parses");
        let settings = c.retention().expect("on");
        assert_eq!(settings.keep, Duration::from_secs(30 * 86_400));
        assert_eq!(settings.batch, 1, "a batch holds at least one message");
        assert_eq!(settings.pause, Duration::from_millis(100));
        assert!(Config::try_parse_from(["confab-server", "--retain-days", "0"]).is_err());
    }

    #[test]
    fn the_data_commands_parse_with_the_data_dir_anywhere() {
        let c = Config::try_parse_from([
            "confab-server",
            "backup",
            "/backups/today",
            "--data-dir",
            "/srv/confab",
        ])
        .expect("parses");
        assert_eq!(c.data_dir, PathBuf::from("/srv/confab"));
        assert!(matches!(
            c.command,
            Some(Command::Backup { dest, step_pages: 256, step_pause_ms: 5 })
                if dest == Path::new("/backups/today")
        ));
        let c = Config::try_parse_from(["confab-server", "restore", "/backups/today", "--force"])
            .expect("parses");
        assert!(matches!(
            c.command,
            Some(Command::Restore { force: true, .. })
        ));
        let c = Config::try_parse_from([
            "confab-server",
            "export",
            "--room",
            "general",
            "-o",
            "out.jsonl",
        ])
        .expect("parses");
        assert!(matches!(
            c.command,
            Some(Command::Export { room: Some(r), output: Some(_) }) if r == "general"
        ));
        let c = Config::try_parse_from(["confab-server", "import", "in.jsonl"]).expect("parses");
        assert!(matches!(
            c.command,
            Some(Command::Import {
                files_from: None,
                ..
            })
        ));
    }

    #[test]
    fn bad_listen_address_is_refused() {
        assert!(Config::try_parse_from(["confab-server", "--listen", "nope"]).is_err());
    }
}
