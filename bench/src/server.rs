//! The server under test: a real `confab-server` process, started fresh for each run.

use std::{net::SocketAddr, path::PathBuf, process::Stdio, time::Duration};

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

/// A rate no bench reaches.
const UNLIMITED: &str = "1000000000";

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Launch {
    pub bin: PathBuf,
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
    // Held so the directories outlive the server; deleted on drop.
    _data_dir: TempDir,
}

impl ServerProcess {
    /// Starts the server on a free loopback port and waits until it listens.
    pub async fn start(launch: &Launch) -> anyhow::Result<ServerProcess> {
        if !launch.bin.is_file() {
            bail!(
                "no server binary at {} (build it with `cargo build --release -p confab-server`, \
                 or pass --server-bin)",
                launch.bin.display()
            );
        }
        let data_dir = TempDir::with_prefix("confab-bench-").context("cannot make a data dir")?;
        // A folder that does not exist: the server then serves the socket only.
        let static_dir = data_dir.path().join("no-static");
        let mut cmd = match launch.core {
            Some(core) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(core.to_string()).arg(&launch.bin);
                cmd
            }
            None => Command::new(&launch.bin),
        };
        // Port 0 and reading the address back avoids racing another process for a port.
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir.path().join("data"))
            .arg("--static-dir")
            .arg(&static_dir)
            .arg("--durability")
            .arg(&launch.durability)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // Settings inherited from the environment would make runs incomparable.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CONFAB_") {
                cmd.env_remove(key);
            }
        }
        // The per-connection rate limit is a policy for people, far below what one
        // bench sender posts; the bench measures capacity, so it lifts the limit.
        // Variables rather than flags, so a server without a rate limit ignores them.
        cmd.env("CONFAB_RATE_LIMIT_PER_SEC", UNLIMITED)
            .env("CONFAB_RATE_LIMIT_BURST", UNLIMITED);
        cmd.args(&launch.extra_args);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", launch.bin.display()))?;
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
            _data_dir: data_dir,
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

/// The address in the server's start-up line, `Confab is running: open http://ADDR/`.
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
