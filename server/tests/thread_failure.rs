//! When the server's own threads die: a panic in the hub thread or in the store writer
//! makes `/healthz` answer 503 naming the part, refuses new sockets with 503, closes the
//! open ones with 1011 and ends the process with a non-zero status, so that a supervisor
//! restarts it; after the restart nothing acknowledged is missing.
//!
//! The panics are injected with `CONFAB_TEST_PANIC` (see `confab_server::health::fault`),
//! which exists in debug builds only: so does this file.
#![cfg(debug_assertions)]

mod common;

use std::{
    net::SocketAddr,
    path::Path,
    process::{ExitStatus, Stdio},
    time::Duration,
};

use common::{
    Client, http_get, open,
    process::{free_addr, server_command, spawn_listening},
    ws_request,
};
use confab_server::health::fault;
use confab_shared::close;
use tokio::{
    process::Child,
    time::{Instant, sleep, timeout},
};
use tokio_tungstenite::tungstenite::Error as WsError;

/// How long the process may take to exit after the panic. The server's own bound is
/// 2 s per step of the way out; a silent socket holds up one of them on purpose.
const EXIT_WITHIN: Duration = Duration::from_secs(10);

/// The server binary `cargo test` built, started with `env` on `addr`.
async fn start(addr: SocketAddr, data_dir: &Path, env: &[(&str, &str)]) -> Child {
    let mut command = server_command(addr, data_dir);
    command
        .env_remove(fault::VAR)
        .envs(env.iter().copied())
        .env("RUST_LOG", "confab_server=info,warn")
        // A backtrace takes the panic hook ~100 ms to symbolise in a debug build: not
        // what the figures are about.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        // The log (stdout) and the panic message and exit error (stderr), for the
        // assertions and for their failure messages.
        .stdout(Stdio::from(
            std::fs::File::create(data_dir.join("stdout.log")).expect("a log file"),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(data_dir.join("stderr.log")).expect("a log file"),
        ));
    spawn_listening(command, addr).await
}

/// What the server wrote: its log, then its standard error.
fn log(data_dir: &Path) -> String {
    let read = |name| std::fs::read_to_string(data_dir.join(name)).unwrap_or_default();
    read("stdout.log") + &read("stderr.log")
}

/// What a failure looked like from outside.
struct Observed {
    /// From sending the trigger to the first 503 from `/healthz`.
    to_503: Duration,
    /// From sending the trigger to the process's exit.
    to_exit: Duration,
    status: ExitStatus,
}

/// Starts the server with `part` armed to panic, has a client's message acknowledged,
/// sets the panic off with the next message, and checks everything the server must do
/// until it exits. Then restarts it without the panic and checks the acknowledged
/// message is there. `what` is how the server names the part ("hub thread").
async fn panic_and_restart(part: &str, what: &str) -> Observed {
    let healthz = format!("{what} stopped\n");
    let data = tempfile::tempdir().expect("data dir");
    let addr = free_addr();
    let mut server = start(addr, data.path(), &[(fault::VAR, part)]).await;

    let resp = http_get(addr, "/healthz").await;
    assert_eq!((resp.status, resp.body.as_str()), (200, "ok"));
    let mut ada = Client::in_room(addr, "ada", "general").await;
    let kept = ada.say("general", "acknowledged before the panic").await;
    // A socket whose client never reads, so never answers the close: it holds the way
    // out up for its bounded grace, long enough to see what the server says meanwhile.
    let silent = Client::connect(addr).await;

    let sent = Instant::now();
    ada.send_to("general", fault::TRIGGER).await;
    let to_503 = loop {
        let resp = http_get(addr, "/healthz").await;
        if resp.status == 503 {
            assert_eq!(resp.body, healthz, "the body names what stopped");
            break sent.elapsed();
        }
        assert_eq!(resp.body, "ok");
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "/healthz still 200 after 5 s\n{}",
            log(data.path())
        );
        sleep(Duration::from_millis(2)).await;
    };
    match open(addr, ws_request(addr)).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 503, "new sockets are refused"),
        Ok(_) => panic!("a new socket was accepted by a server that cannot chat"),
        Err(e) => panic!("expected 503 for a new socket, got {e}"),
    }
    assert_eq!(
        ada.expect_close().await,
        close::INTERNAL_ERROR,
        "open sockets are closed with 1011"
    );

    let status = timeout(EXIT_WITHIN, server.wait())
        .await
        .unwrap_or_else(|_| panic!("still running {EXIT_WITHIN:?} after the panic"))
        .expect("wait for the server");
    let to_exit = sent.elapsed();
    drop(silent);
    let log = log(data.path());
    assert_eq!(status.code(), Some(1), "exits non-zero: {status}\n{log}");
    for says in [
        format!("the {what} stopped: chat cannot go on"),
        format!("Error: the {what} stopped"),
    ] {
        assert!(log.contains(&says), "the log says {says:?}:\n{log}");
    }

    // As a supervisor would: start it again. Whatever was acknowledged is there; the
    // message that set the panic off never was acknowledged, and is not.
    let addr = free_addr();
    let mut again = start(addr, data.path(), &[]).await;
    let resp = http_get(addr, "/healthz").await;
    assert_eq!((resp.status, resp.body.as_str()), (200, "ok"));
    let mut bob = Client::named(addr, "bob").await;
    let (_, history) = bob.join("general").await;
    assert_eq!(history, [kept], "the acknowledged message, and only it");
    again.kill().await.expect("stop the restarted server");

    Observed {
        to_503,
        to_exit,
        status,
    }
}

#[tokio::test]
async fn a_panic_in_the_hub_thread_is_reported_and_ends_the_process() {
    let seen = panic_and_restart("hub", "hub thread").await;
    println!(
        "hub panic: /healthz 503 after {:?}, exit ({}) after {:?}",
        seen.to_503, seen.status, seen.to_exit
    );
}

#[tokio::test]
async fn a_panic_in_the_store_writer_is_reported_and_ends_the_process() {
    let seen = panic_and_restart("writer", "store writer").await;
    println!(
        "writer panic: /healthz 503 after {:?}, exit ({}) after {:?}",
        seen.to_503, seen.status, seen.to_exit
    );
}
