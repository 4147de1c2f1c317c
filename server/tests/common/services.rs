//! Real PostgreSQL and Redis servers for tests, each on its own free port in its own
//! temporary directory, stopped and removed when its guard is dropped (a panicking test
//! included).
//!
//! Real servers rather than mocks because what the cluster has to get right is how the real
//! ones behave: transactions and locks in PostgreSQL, pub/sub that forgets messages sent
//! while a subscriber reconnects in Redis, and both going away and coming back
//! ([`Postgres::restart`], [`Redis::restart`]). `scripts/test.sh` installs the binaries
//! (`ensure_postgres`, `ensure_redis` in scripts/lib.sh); nothing here needs a running
//! service or Docker.
//!
//! Everything is synchronous (std processes, blocking waits with deadlines) so a guard can
//! stop its server in `Drop`, where nothing can be awaited. An async test may call it
//! directly (a start or restart blocks its thread for a fraction of a second); one whose
//! other tasks must keep running meanwhile, on a current-thread runtime, calls it through
//! `spawn_blocking`.

use std::{
    fs,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::fs::chown,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

/// How long a server gets to accept connections after it is started, and to exit after it
/// is asked to stop. Generous: two shared cores, tests running in parallel.
const DEADLINE: Duration = Duration::from_secs(30);

/// How many fresh ports a new server tries when the one it picked was taken in the
/// meantime (another test, or anything else on the machine, can bind it first).
const PORT_ATTEMPTS: usize = 5;

/// A port on 127.0.0.1 that nothing listens on right now. Another process may still take
/// it before the server binds it: callers retry on another one.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a random port");
    listener.local_addr().expect("listener address").port()
}

/// Whether a process with this pid exists and is not a zombie: after a stop, the server
/// must be gone, not merely dying.
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// What both servers log (from the OS's EADDRINUSE) when their port is taken.
const PORT_TAKEN: &str = "Address already in use";

/// What a log says after its first `from` bytes: a retry must look at its own attempt only.
fn logged_since(log: &str, from: usize) -> &str {
    log.get(from..).unwrap_or("")
}

/// The ports a new server tries: `first` (when given), then fresh free ones.
fn candidate_ports(first: Option<u16>) -> impl Iterator<Item = u16> {
    first
        .into_iter()
        .chain(std::iter::repeat_with(free_port))
        .take(PORT_ATTEMPTS)
}

fn running_as_root() -> Result<bool> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .context("run `id -u`")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The last lines of a server's log, for error messages.
fn log_tail(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(log) => {
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(30);
            format!("--- {} ---\n{}", path.display(), lines[from..].join("\n"))
        }
        Err(e) => format!("(no log at {}: {e})", path.display()),
    }
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

/// Sends `signal` (a name `kill` knows: TERM, KILL) to `pid`. The crate forbids
/// `unsafe`, so no libc::kill.
fn send_signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .context("run kill")?;
    if !status.success() && process_alive(pid) {
        bail!("kill -{signal} {pid} failed: {status}");
    }
    Ok(())
}

/// Waits until `pid` is gone, up to `deadline`.
fn wait_gone(pid: u32, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    while process_alive(pid) {
        if Instant::now() >= until {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
    true
}

/// The first `name` on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// How the harness runs PostgreSQL's binaries when it is root, which initdb refuses: as
/// `user`, through util-linux's runuser (no shell, so no quoting of paths).
struct RunAs {
    runuser: PathBuf,
    user: &'static str,
    uid: u32,
    gid: u32,
}

impl RunAs {
    fn postgres() -> Result<Self> {
        let user = "postgres";
        // util-linux installs it in /usr/sbin, which a minimal PATH may lack.
        let runuser = on_path("runuser")
            .or_else(|| {
                ["/usr/sbin/runuser", "/sbin/runuser"]
                    .into_iter()
                    .map(PathBuf::from)
                    .find(|path| path.is_file())
            })
            .context("no runuser (util-linux) to run PostgreSQL as the postgres user")?;
        let (uid, gid) = user_ids(user)?;
        Ok(RunAs {
            runuser,
            user,
            uid,
            gid,
        })
    }
}

/// The directory of PostgreSQL's server binaries: where `initdb` on PATH really lives (on
/// this machine image /usr/local/bin/initdb links to Debian's directory), else the newest
/// of Debian's /usr/lib/postgresql/VERSION/bin, which Debian keeps off PATH.
/// scripts/lib.sh (`postgres_bin_dir`) looks in the same places.
fn postgres_bin_dir() -> Result<PathBuf> {
    let has_all = |dir: &Path| ["initdb", "postgres"].iter().all(|b| dir.join(b).is_file());
    let from_path = on_path("initdb")
        .and_then(|initdb| fs::canonicalize(initdb).ok())
        .and_then(|initdb| initdb.parent().map(Path::to_owned))
        .filter(|dir| has_all(dir));
    if let Some(dir) = from_path {
        return Ok(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_all(dir))
        .collect();
    debian.sort();
    debian.pop().map(|(_, dir)| dir).context(
        "no PostgreSQL server binaries (initdb, postgres) on PATH nor in \
         /usr/lib/postgresql/*/bin: scripts/test.sh installs them (ensure_postgres), \
         or `apt-get install postgresql`",
    )
}

/// A throwaway PostgreSQL cluster: `initdb` in a temporary directory, the server on its own
/// port on 127.0.0.1, the superuser `postgres` without a password (trust). Stopped and
/// deleted on drop.
///
/// The server runs in the foreground as a child of the test (not daemonized by pg_ctl), so
/// the test itself reaps it: once stopped it is gone, not a zombie waiting for init.
///
/// Tuned for tests, never for data anyone keeps: `fsync=off`, `synchronous_commit=off` and
/// `full_page_writes=off` make commits cheap and a crash of the machine may corrupt the
/// cluster, which is fine for a directory deleted at the end of the test. A clean stop or
/// restart still keeps everything committed (the tests rely on that).
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    /// Set when running as root: every PostgreSQL command then runs as `postgres`, on a
    /// directory it owns.
    run_as: Option<RunAs>,
    port: u16,
    /// `postgres` itself, or the runuser running it as root.
    server: Option<Child>,
}

impl Postgres {
    /// Creates and starts a cluster on a free port.
    pub fn start() -> Result<Self> {
        Self::start_preferring(None)
    }

    /// Like [`Postgres::start`], trying `port` first: lets a test check that a taken port
    /// makes it move on to another one.
    pub fn start_preferring(port: Option<u16>) -> Result<Self> {
        let bin = postgres_bin_dir()?;
        let run_as = if running_as_root()? {
            Some(RunAs::postgres()?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("confab-pg-")
            .tempdir()
            .context("create a temporary directory for PostgreSQL")?;
        if let Some(run_as) = &run_as {
            chown(dir.path(), Some(run_as.uid), Some(run_as.gid))
                .with_context(|| format!("chown {} to {}", dir.path().display(), run_as.user))?;
        }
        let mut pg = Postgres {
            dir,
            bin,
            run_as,
            port: 0,
            server: None,
        };
        pg.init()?;
        let mut failures = Vec::new();
        for port in candidate_ports(port) {
            pg.port = port;
            let logged_before = pg.log().len();
            match pg.start_again() {
                Ok(()) => return Ok(pg),
                // Only a taken port is worth another try; anything else would fail again.
                Err(e) if logged_since(&pg.log(), logged_before).contains(PORT_TAKEN) => {
                    failures.push(format!("port {port}: {e:#}"));
                }
                Err(e) => return Err(e),
            }
        }
        bail!(
            "PostgreSQL did not start on any of {PORT_ATTEMPTS} ports:\n{}",
            failures.join("\n")
        )
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`: the same across restarts.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory holding the cluster, its log and its socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The postmaster's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        let child = self.server.as_ref()?;
        match self.run_as {
            Some(_) => self.postmaster_pid(),
            None => Some(child.id()),
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A fast shutdown (clients are disconnected, committed data stays), then a start on
    /// the same port and data: what a database restart or failover looks like to clients.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// Stops the server with a fast shutdown (SIGINT: open connections are cut, committed
    /// data is kept), SIGKILL if it lingers. Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.server.take() else {
            return Ok(());
        };
        // As root the child is runuser: signal the postmaster itself. It may not have
        // written its pid yet if it is stopped while starting.
        let postmaster = self.postmaster_pid().filter(|pid| process_alive(*pid));
        let target = postmaster.unwrap_or(child.id());
        send_signal(target, "INT")?;
        let until = Instant::now() + DEADLINE;
        while child.try_wait().context("wait for postgres")?.is_none() {
            if Instant::now() >= until {
                send_signal(target, "KILL")?;
                child.kill().context("SIGKILL postgres")?;
                child.wait().context("wait for postgres")?;
                break;
            }
            sleep(Duration::from_millis(20));
        }
        if let Some(pid) = postmaster
            && !wait_gone(pid, DEADLINE)
        {
            bail!("PostgreSQL (pid {pid}) still runs after it was stopped");
        }
        Ok(())
    }

    /// Starts the stopped server again on the same port and data. Fails, with the server's
    /// log, when that port has been taken in the meantime: the URL must not change.
    pub fn start_again(&mut self) -> Result<()> {
        if self.server.is_some() {
            return Ok(());
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("open the PostgreSQL log")?;
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            // On the command line rather than in postgresql.conf: a retry changes it.
            .args(["-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("share the PostgreSQL log")?)
            .stderr(log)
            .spawn()
            .context("run postgres")?;
        self.server = Some(child);
        if let Err(e) = self.wait_ready() {
            let _ = self.stop();
            bail!(
                "PostgreSQL did not start on port {}: {e:#}\n{}",
                self.port,
                log_tail(&self.log_path())
            );
        }
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Line N (from 1) of postmaster.pid, which the postmaster keeps up to date while it
    /// runs: 1 is its pid, 8 its status ("starting", "ready", "stopping").
    fn postmaster_pid_line(&self, n: usize) -> Option<String> {
        let file = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        file.lines().nth(n - 1).map(|line| line.trim().to_owned())
    }

    fn postmaster_pid(&self) -> Option<u32> {
        self.postmaster_pid_line(1)?.parse().ok()
    }

    /// Waits until the postmaster says it is ready and its port accepts connections (what
    /// `pg_ctl start -w` waits for), or fails as soon as it has exited.
    fn wait_ready(&mut self) -> Result<()> {
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(child) = self.server.as_mut()
                && let Some(status) = child.try_wait().context("wait for postgres")?
            {
                self.server = None;
                bail!("postgres exited: {status}");
            }
            let ready = self.postmaster_pid_line(8).as_deref() == Some("ready")
                && self.postmaster_pid().is_some_and(process_alive)
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if ready {
                return Ok(());
            }
            if Instant::now() >= until {
                bail!("not ready after {DEADLINE:?}");
            }
            sleep(Duration::from_millis(20));
        }
    }

    fn init(&self) -> Result<()> {
        let data = self.data_dir();
        // --no-sync: nothing here has to survive a power cut. Locale C: tests must not
        // depend on the machine's locales.
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .context("run initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", describe(&out));
        }
        // Appended as root the file keeps its owner (postgres).
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .context("open postgresql.conf")?;
        write!(
            conf,
            "\n# confab test harness: a throwaway cluster, fast rather than crash-safe\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = 16MB\n\
             max_connections = 50\n",
            socket_dir = self.dir.path().display()
        )
        .context("write postgresql.conf")?;
        Ok(())
    }

    /// One of the PostgreSQL binaries, as `postgres` when we are root.
    fn command(&self, binary: &str) -> Command {
        let path = self.bin.join(binary);
        let mut command = match &self.run_as {
            Some(run_as) => {
                let mut c = Command::new(&run_as.runuser);
                c.args(["-u", run_as.user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        // The caller's directory may be closed to the postgres user.
        command.current_dir(self.dir.path());
        command
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("stopping the test PostgreSQL failed: {e:#}");
        }
    }
}

/// The uid and gid of `user`, from `id`.
fn user_ids(user: &str) -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .context("run id")?;
        if !out.status.success() {
            bail!(
                "no user {user} to run PostgreSQL as (initdb refuses root; Debian's \
                 postgresql package creates it): {}",
                describe(&out)
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .with_context(|| format!("id {flag} {user}"))
    };
    Ok((id("-u")?, id("-g")?))
}

/// A throwaway Redis: `redis-server` on its own port on 127.0.0.1, nothing persisted (no
/// RDB, no AOF), so a restart comes back empty, as a real Redis does without persistence:
/// the cluster must rebuild what it keeps there. Stopped on drop.
pub struct Redis {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl Redis {
    /// Starts a server on a free port.
    pub fn start() -> Result<Self> {
        Self::start_preferring(None)
    }

    /// Like [`Redis::start`], trying `port` first.
    pub fn start_preferring(port: Option<u16>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("confab-redis-")
            .tempdir()
            .context("create a temporary directory for Redis")?;
        let mut redis = Redis {
            child: None,
            port: 0,
            dir,
        };
        let mut failures = Vec::new();
        for port in candidate_ports(port) {
            redis.port = port;
            let logged_before = redis.log().len();
            match redis.start_again() {
                Ok(()) => return Ok(redis),
                Err(e) if logged_since(&redis.log(), logged_before).contains(PORT_TAKEN) => {
                    failures.push(format!("port {port}: {e:#}"));
                }
                Err(e) => return Err(e),
            }
        }
        bail!(
            "Redis did not start on any of {PORT_ATTEMPTS} ports:\n{}",
            failures.join("\n")
        )
    }

    /// `redis://127.0.0.1:PORT`: the same across restarts.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stops and starts the server on the same port: connections are cut and every key,
    /// subscription and channel is gone.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// Stops the server (SIGTERM, then SIGKILL if it lingers). Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        send_signal(child.id(), "TERM")?;
        let until = Instant::now() + DEADLINE;
        loop {
            if child.try_wait().context("wait for redis-server")?.is_some() {
                return Ok(());
            }
            if Instant::now() >= until {
                child.kill().context("SIGKILL redis-server")?;
                child.wait().context("wait for redis-server")?;
                return Ok(());
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Starts the stopped server again on the same port. Fails, with the server's log,
    /// when that port has been taken in the meantime.
    pub fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "run redis-server: scripts/test.sh installs it (ensure_redis), \
                 or `apt-get install redis-server`",
            )?;
        self.child = Some(child);
        if let Err(e) = self.wait_ready() {
            let _ = self.stop();
            bail!(
                "Redis did not start on port {port}: {e:#}\n{}",
                log_tail(&self.log_path())
            );
        }
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Waits until the server answers PING, or fails as soon as it has exited.
    fn wait_ready(&mut self) -> Result<()> {
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("wait for redis-server")?
            {
                self.child = None;
                bail!("redis-server exited: {status}");
            }
            match ping(self.port) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= until => {
                    bail!("no PONG on port {} after {DEADLINE:?}: {e:#}", self.port)
                }
                Err(_) => sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("stopping the test Redis failed: {e:#}");
        }
    }
}

/// One PING in RESP over a fresh connection: answers only once Redis is ready (while it
/// loads it says -LOADING).
fn ping(port: u16) -> Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply)?;
    if &reply != b"+PONG\r\n" {
        bail!("unexpected reply {:?}", String::from_utf8_lossy(&reply));
    }
    Ok(())
}
