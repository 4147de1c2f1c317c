//! What clients send cannot forge or flood the server's log: the binary is run with its
//! log captured, fed hostile text where it logs what clients chose, and its output is
//! read line by line.

mod common;

use std::{path::Path, process::Stdio, time::Duration};

use common::{
    http_post, http_request,
    process::{free_addr, server_command, spawn_listening},
};
use serde_json::json;
use tokio::time::{Instant, sleep};

/// What a forged line would look like: the server's own format, at a level that pages
/// someone.
const FORGED: &str = "2026-12-01T05:00:00.000000Z ERROR confab_server: the store is corrupt";

/// Everything the server wrote (its log on stdout, panics on stderr).
fn output(dir: &Path) -> String {
    let read = |name| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    read("stdout.log") + &read("stderr.log")
}

/// Waits until the output holds `needle`, and returns it.
async fn wait_for(dir: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = output(dir);
        if out.contains(needle) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{out}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_username_or_origin_with_a_line_break_cannot_forge_a_log_line() {
    let dir = tempfile::TempDir::new().expect("temporary dir");
    let addr = free_addr();
    let file = |name| Stdio::from(std::fs::File::create(dir.path().join(name)).expect("log file"));
    let mut command = server_command(addr, &dir.path().join("data"));
    command
        .env("RUST_LOG", "confab_server=info,warn")
        .env("NO_COLOR", "1")
        .stdout(file("stdout.log"))
        .stderr(file("stderr.log"));
    let _server = spawn_listening(command, addr).await;

    // A sign-in is refused with the username in the log line.
    let username = format!("nobody\n{FORGED}\r\n{}", "x".repeat(2_000));
    let resp = http_post(
        addr,
        "/api/signin",
        &[],
        &json!({"username": username, "password": "not the password"}),
    )
    .await;
    assert_eq!(resp.status, 401, "{resp:?}");
    // A foreign Origin is logged too: a header cannot hold a line break, but it can hold
    // a bidi override (as UTF-8 bytes) and run to kilobytes.
    let origin = format!("https://evil.example/\u{202E}{}", "y".repeat(5_000));
    let resp = http_request(
        addr,
        "GET",
        "/ws",
        &[
            ("Origin", &origin),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        None,
    )
    .await;
    assert_eq!(resp.status, 403, "{resp:?}");

    wait_for(dir.path(), "sign-in refused").await;
    let out = wait_for(dir.path(), "foreign origin").await;
    let forged: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.to_ascii_lowercase().starts_with("2026-12-01t05:00:00")
                || l.trim_start().starts_with('x')
        })
        .collect();
    assert!(forged.is_empty(), "forged lines {forged:?} in:\n{out}");
    let refused = out
        .lines()
        .find(|l| l.contains("sign-in refused"))
        .expect("the refusal line");
    // (Lower-cased: that is how the throttle keys an impossible username.)
    assert!(
        refused.contains(r#"user="nobody\n2026-12-01t05:00:00.000000z error confab_server: the"#),
        "the username is logged escaped: {refused}"
    );
    let origin_line = out
        .lines()
        .find(|l| l.contains("foreign origin"))
        .expect("the origin line");
    assert!(
        origin_line.contains(r"evil.example/\u{202e}yyy") && !origin_line.contains('\u{202E}'),
        "the override is escaped: {origin_line}"
    );
    for line in out.lines() {
        assert!(
            line.len() < 1_000,
            "a log line of {} bytes: {line:.200}",
            line.len()
        );
    }
}
