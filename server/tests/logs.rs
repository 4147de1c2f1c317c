//! What clients send cannot forge or flood the server's log: the binary is run with its
//! log captured, fed hostile text where it logs what clients chose, and its output is
//! read line by line. With `--log-format json` every line is one JSON object, and a
//! connection's lines carry its id, a request's its request id.

mod common;

use std::{path::Path, process::Stdio, time::Duration};

use common::{
    Client, http_get, http_request,
    process::{free_addr, server_command, spawn_listening},
};
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
    let resp = common::sign_in(addr, &username, "not the password").await;
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

/// A response header's value (headers are read lower-cased).
fn header<'a>(resp: &'a common::HttpResponse, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    resp.headers.iter().find_map(|h| h.strip_prefix(&prefix))
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_connection_and_request_ids() {
    let dir = tempfile::TempDir::new().expect("temporary dir");
    let addr = free_addr();
    let file = |name| Stdio::from(std::fs::File::create(dir.path().join(name)).expect("log file"));
    let mut command = server_command(addr, &dir.path().join("data"));
    command
        .args(["--log-format", "json"])
        .env("RUST_LOG", "confab_server=debug,warn")
        .stdout(file("stdout.log"))
        .stderr(file("stderr.log"));
    let _server = spawn_listening(command, addr).await;

    // A request with an id of its own keeps it; one without gets one; one with an id
    // that is not a plain token gets a fresh one instead.
    let resp = http_request(
        addr,
        "GET",
        "/api/me",
        &[("X-Request-Id", "trace-me-42")],
        None,
    )
    .await;
    assert_eq!(
        header(&resp, "x-request-id"),
        Some("trace-me-42"),
        "{resp:?}"
    );
    let resp = http_get(addr, "/api/me").await;
    let made = header(&resp, "x-request-id")
        .expect("a request id is made")
        .to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let resp = http_request(
        addr,
        "GET",
        "/api/me",
        &[("X-Request-Id", "two words")],
        None,
    )
    .await;
    let replaced = header(&resp, "x-request-id").expect("an id").to_owned();
    assert_ne!(replaced, "two words");

    // A socket session, closed by the client.
    let mut client = Client::named(addr, "eve").await;
    client.join("general").await;
    client.ws.close(None).await.expect("close");
    wait_for(dir.path(), r#""message":"disconnected""#).await;

    let stdout = std::fs::read_to_string(dir.path().join("stdout.log")).expect("stdout");
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).expect("stderr");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .chain(stderr.lines())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        // The five keys a shipper maps, and nothing else.
        assert_eq!(
            line.as_object()
                .map(|o| o.keys().map(String::as_str).collect::<Vec<_>>()),
            Some(vec!["fields", "level", "message", "target", "time"]),
            "{line}"
        );
        assert!(line["time"].is_string(), "{line}");
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
                .contains(&line["level"].as_str().unwrap_or("")),
            "{line}"
        );
        assert!(
            line["target"].as_str().is_some_and(|t| !t.is_empty()),
            "{line}"
        );
        assert!(line["message"].is_string(), "{line}");
        assert!(line["fields"].is_object(), "{line}");
    }
    let message = |l: &serde_json::Value, m: &str| l["message"] == m;

    // Each request's line carries the id its response echoed.
    for id in ["trace-me-42", made.as_str(), replaced.as_str()] {
        let line = lines
            .iter()
            .find(|l| message(l, "request") && l["fields"]["request_id"] == id)
            .unwrap_or_else(|| panic!("no request line with id {id} in:\n{stdout}"));
        assert_eq!(line["fields"]["status"], 401, "{line}");
        assert_eq!(line["fields"]["method"], "GET", "{line}");
        // Client text sits in the JSON string as it is, not quoted again.
        assert_eq!(line["fields"]["path"], "/api/me", "{line}");
    }

    // The connection's lines carry one id, from its start to its end.
    let connected = lines
        .iter()
        .find(|l| message(l, "connected"))
        .unwrap_or_else(|| panic!("no connected line in:\n{stdout}"));
    let conn_id = connected["fields"]["conn_id"].as_u64().expect("a conn_id");
    let disconnected = lines
        .iter()
        .find(|l| message(l, "disconnected"))
        .expect("a disconnected line");
    assert_eq!(
        disconnected["fields"]["conn_id"].as_u64(),
        Some(conn_id),
        "{disconnected}"
    );
    assert_eq!(
        disconnected["fields"]["code"], 1005,
        "closed without a code: {disconnected}"
    );
    // The upgrade that opened the socket was a request with an id too.
    assert!(
        lines.iter().any(|l| message(l, "request")
            && l["fields"]["path"]
                .as_str()
                .is_some_and(|p| p.contains("/ws"))
            && l["fields"]["status"] == 101),
        "the upgrade's request line:\n{stdout}"
    );
}
