//! The server under test: a real `confab-server` process, started fresh for each run.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tempfile::TempDir;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    time::timeout,
};

/// How long the server may take to start listening, and to exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A rate or count no bench reaches.
const UNLIMITED: &str = "1000000000";

/// Which server a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// `confab-server`, the binary given by `--server-bin`.
    Confab,
    /// The Node `ws` broadcast server in `bench/peers/node-ws` (fan-out and idle only).
    NodeWs,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Confab => "confab",
            Peer::NodeWs => "node-ws",
        }
    }
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Launch {
    pub peer: Peer,
    /// The `confab-server` binary (for [`Peer::Confab`]).
    pub bin: PathBuf,
    /// The folder of the Node peer's `server.js` (for [`Peer::NodeWs`]).
    pub node_peer_dir: PathBuf,
    /// `taskset -c` core, or `None` to let it run anywhere.
    pub core: Option<usize>,
    pub durability: String,
    /// More flags for the server, after the bench's own.
    pub extra_args: Vec<String>,
}

/// A running server. Dropping it kills the process; [`ServerProcess::stop`] is the
/// clean way, and checks that the server shut down cleanly.
pub struct ServerProcess {
    child: Child,
    pid: u32,
    pub addr: SocketAddr,
    // Held so the directories outlive the server; deleted on drop. `None` when the
    // caller keeps the data directory ([`ServerProcess::start_in`]).
    _data_dir: Option<TempDir>,
}

impl ServerProcess {
    /// Starts the server on a free loopback port and waits until it listens.
    pub async fn start(launch: &Launch) -> anyhow::Result<ServerProcess> {
        let data_dir = TempDir::with_prefix("confab-bench-").context("cannot make a data dir")?;
        let mut server = Self::start_in(launch, data_dir.path()).await?;
        server._data_dir = Some(data_dir);
        Ok(server)
    }

    /// Like [`ServerProcess::start`], with the data directory (its `data` folder) in
    /// `dir`, which the caller keeps: to stop a server and start another on its store.
    pub async fn start_in(launch: &Launch, dir: &Path) -> anyhow::Result<ServerProcess> {
        let mut cmd = match launch.core {
            Some(core) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(core.to_string());
                cmd
            }
            // `env` runs the program as `taskset` would, so both cases build alike.
            None => Command::new("env"),
        };
        match launch.peer {
            Peer::Confab => confab_command(&mut cmd, launch, dir)?,
            Peer::NodeWs => node_command(&mut cmd, launch)?,
        }
        cmd.env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start the {} server", launch.peer.name()))?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = listening_addr(&line) {
                    return Ok(addr);
                }
                eprintln!("[server] {line}");
            }
            bail!("the server exited before it listened")
        })
        .await
        .context("the server did not start listening in time")??;
        // Keep draining the server's output so it never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[server] {line}");
            }
        });
        Ok(ServerProcess {
            child,
            pid,
            addr,
            _data_dir: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The chat socket's URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Resident memory of the server now, in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        parse_vm_rss(&status).with_context(|| format!("no VmRSS in {path}"))
    }

    /// CPU time the server has used so far (user + system).
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        crate::report::cpu_time_of(&format!("/proc/{}/stat", self.pid))
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = i32::try_from(self.pid).context("pid out of range")?;
        kill(Pid::from_raw(pid), Signal::SIGTERM).context("cannot signal the server")?;
        let status = timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .context("the server did not exit after SIGTERM")?
            .context("cannot wait for the server")?;
        if !status.success() {
            bail!("the server exited with {status} after SIGTERM");
        }
        Ok(())
    }
}

/// `confab-server` on a free port with a fresh data directory, every setting of the
/// caller's environment removed, and the limits meant for people lifted.
fn confab_command(cmd: &mut Command, launch: &Launch, dir: &Path) -> anyhow::Result<()> {
    if !launch.bin.is_file() {
        bail!(
            "no server binary at {} (build it with `cargo build --release -p confab-server`, \
             or pass --server-bin)",
            launch.bin.display()
        );
    }
    // A folder that does not exist: the server then serves the socket only.
    let static_dir = dir.join("no-static");
    // Port 0 and reading the address back avoids racing another process for a port.
    cmd.arg(&launch.bin)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir(dir))
        .arg("--static-dir")
        .arg(&static_dir)
        .arg("--durability")
        .arg(&launch.durability);
    // Settings inherited from the environment would make runs incomparable.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CONFAB_") {
            cmd.env_remove(key);
        }
    }
    // The rate and connection limits are policies for people on the internet, far below
    // what one bench client posts or how many sockets it opens from one address; the
    // bench measures capacity, so it lifts them. Variables rather than flags, so a
    // server without one of the limits ignores it.
    for var in [
        "CONFAB_RATE_LIMIT_PER_SEC",
        "CONFAB_RATE_LIMIT_BURST",
        "CONFAB_MAX_CONNECTIONS",
        "CONFAB_MAX_CONNECTIONS_PER_IP",
        "CONFAB_MAX_HTTP_CONNECTIONS",
        "CONFAB_MAX_HTTP_CONNECTIONS_PER_IP",
        "CONFAB_MAX_ROOMS",
        "CONFAB_ROOM_CHANGES_PER_MIN",
        "CONFAB_ROOM_CHANGES_BURST",
        "CONFAB_EDITS_PER_MIN",
        "CONFAB_EDITS_BURST",
        // The fan-out scenario's edit/reaction mix signs its publishers up, all from
        // one address.
        "CONFAB_SIGN_IN_PER_IP_PER_MIN",
    ] {
        cmd.env(var, UNLIMITED);
    }
    // Bench clients are guests: accounts would add an Argon2 sign-in per client to a
    // setup that measures sockets and messages, not password hashing.
    cmd.env("CONFAB_ALLOW_GUESTS", "true");
    cmd.args(&launch.extra_args);
    Ok(())
}

/// The server's `--data-dir` inside a bench's directory.
pub fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// The Node `ws` peer on a free port. Its packages must be installed (`npm ci` in its
/// folder; `scripts/bench.sh` and the test command do it).
fn node_command(cmd: &mut Command, launch: &Launch) -> anyhow::Result<()> {
    let script = launch.node_peer_dir.join("server.js");
    if !launch.node_peer_dir.join("node_modules/ws").is_dir() {
        bail!(
            "the Node peer's packages are missing: run `npm ci` in {}",
            launch.node_peer_dir.display()
        );
    }
    cmd.arg("node")
        .arg(&script)
        .arg("--listen")
        .arg("127.0.0.1:0");
    Ok(())
}

/// The address in the server's start-up line, `Confab is running: open http://ADDR/`
/// (the Node peer prints `... listening on http://ADDR/`).
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("http://")?;
    rest.trim_end().trim_end_matches('/').parse().ok()
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_address() {
        assert_eq!(
            listening_addr("Confab is running: open http://127.0.0.1:41234/"),
            Some("127.0.0.1:41234".parse().expect("addr"))
        );
        assert_eq!(listening_addr("something else"), None);
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tconfab-server\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }
}
