//! The `confab-server` binary as a child process, for tests that kill it, restart it or
//! measure it from outside.

use std::{net::SocketAddr, path::Path, process::Stdio, time::Duration};

use tokio::{
    process::{Child, Command},
    time::{Instant, sleep, timeout},
};

/// The server binary `cargo test` built, on `addr` with `data_dir`, guests allowed (as in
/// `super::start_with`: these tests are about chat, not accounts) and no client.
pub fn server_command(addr: SocketAddr, data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_confab-server"));
    command
        .args([
            "--listen",
            &addr.to_string(),
            "--static-dir",
            "no-client-here",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--allow-guests")
        .kill_on_drop(true);
    command
}

/// Starts `command` and waits until the server listens on `addr`.
pub async fn spawn_listening(mut command: Command, addr: SocketAddr) -> Child {
    let child = command.spawn().expect("start confab-server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "server did not start listening");
        sleep(Duration::from_millis(20)).await;
    }
    child
}

/// A running server binary on a fixed address and data directory.
pub struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    pub async fn start(addr: SocketAddr, data_dir: &Path) -> Self {
        Self::start_with(addr, data_dir, &[]).await
    }

    /// Starts the binary with extra flags and waits until it listens.
    pub async fn start_with(addr: SocketAddr, data_dir: &Path, flags: &[&str]) -> Self {
        let mut command = server_command(addr, data_dir);
        command
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        ServerProcess {
            child: spawn_listening(command, addr).await,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running server has a pid")
    }

    /// Resident memory of the server now, from /proc, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// SIGKILL: no shutdown code runs, nothing is flushed on purpose.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL the server");
    }

    /// SIGTERM, expecting a clean exit (status 0) within 10 s.
    pub async fn terminate(mut self) {
        let pid = self.pid();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let exit = timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("server exits within 10 s of SIGTERM")
            .expect("wait for the server");
        assert!(exit.success(), "clean shutdown exits 0, got {exit}");
    }
}

/// An address on 127.0.0.1 that nothing listens on right now.
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// What a `confab-server` command (`admin …`, `backup`, `export`…) did.
#[derive(Debug)]
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Both streams, standard output first: what a person would read.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `confab-server ARGS…` as its own process to its end (two minutes at most, else
/// the test fails), with `stdin` written to it and closed, and warnings only in its log.
pub async fn run_command(args: &[&str], stdin: &str) -> Ran {
    use tokio::io::AsyncWriteExt;

    let mut child = Command::new(env!("CARGO_BIN_EXE_confab-server"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run confab-server");
    let mut input = child.stdin.take().expect("its stdin");
    // A command that reads nothing may have ended already.
    let _ = input.write_all(stdin.as_bytes()).await;
    drop(input);
    let out = timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the command finishes")
        .expect("its output");
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
