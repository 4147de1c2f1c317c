//! `GET /metrics` against the real binary: the counters move by exactly what a scripted
//! chat did, every line of the scrape passes a strict reader of the text format
//! (`common::prometheus`), the main port asks for the token, the separate listener
//! serves without one, and `deploy/grafana-dashboard.json` asks only for series the
//! server exports.

mod common;

use std::{collections::BTreeSet, net::SocketAddr, path::Path};

use common::{
    Client, PASSWORD, http_get, http_request,
    process::{free_addr, server_command, spawn_listening},
    prometheus::{self, Scrape},
    sign_up,
};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

const TOKEN: &str = "scrape-me-7f3a";

/// Waits until the metrics listener accepts (the server binds it a moment after its
/// main port).
async fn wait_listening(metrics_addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    while tokio::net::TcpStream::connect(metrics_addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no metrics listener"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Scrapes `/metrics` on the metrics listener and reads it strictly.
async fn scrape(metrics_addr: SocketAddr) -> Scrape {
    let resp = http_get(metrics_addr, "/metrics").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(
        resp.headers
            .iter()
            .any(|h| h == "content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{:?}",
        resp.headers
    );
    prometheus::parse(&resp.body).unwrap_or_else(|e| panic!("{e}\n{}", resp.body))
}

/// How much `series` moved between two scrapes.
fn moved(before: &Scrape, after: &Scrape, series: &str) -> f64 {
    after.value(series) - before.value(series)
}

/// Waits until a scrape satisfies `done` (what the server counts after answering, such
/// as a connection's end, lands a moment later).
async fn scrape_until(metrics_addr: SocketAddr, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    loop {
        let s = scrape(metrics_addr).await;
        if done(&s) || tokio::time::Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_scripted_chat_moves_the_counters_by_exactly_what_it_did() {
    let dir = tempfile::TempDir::new().expect("temporary dir");
    let (addr, metrics_addr) = (free_addr(), free_addr());
    let mut command = server_command(addr, &dir.path().join("data"));
    command
        .args(["--metrics-listen", &metrics_addr.to_string()])
        .env("CONFAB_METRICS_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null());
    let _server = spawn_listening(command, addr).await;
    wait_listening(metrics_addr).await;

    let before = scrape(metrics_addr).await;
    for (name, _) in confab_server::metrics::DESCRIPTIONS {
        assert!(
            before.families.contains_key(*name),
            "{name} is exported before anything happened"
        );
        assert!(!before.help[*name].is_empty(), "{name} has a help text");
    }
    assert!(before.value("process_resident_memory_bytes") > 1e6);
    assert!(before.value("process_open_fds") > 3.0);

    // The script: an account signs up, a sign-in fails, one succeeds; the account and a
    // guest join #general, the account says five things, the guest leaves with 1000.
    let cookie = sign_up(addr, "ada").await;
    let wrong = common::sign_in(addr, "ada", "not her password").await;
    assert_eq!(wrong.status, 401);
    let right = common::sign_in(addr, "ada", PASSWORD).await;
    assert_eq!(right.status, 200);
    let mut ada = Client::signed_in(addr, &cookie).await;
    ada.join("general").await;
    let mut guest = Client::named(addr, "bo").await;
    guest.join("general").await;
    const SAID: usize = 5;
    for n in 0..SAID {
        ada.say("general", &format!("message {n}")).await;
        guest.next_message().await;
    }
    guest
        .ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .expect("close");
    let closed = r#"confab_connections_closed_total{by="client",code="1000"}"#;
    let after = scrape_until(metrics_addr, |s| moved(&before, s, closed) >= 1.0).await;

    let exactly = |series: &str, n: f64| {
        assert_eq!(moved(&before, &after, series), n, "{series}");
    };
    exactly("confab_sign_ups_total", 1.0);
    exactly("confab_sign_ins_total", 1.0);
    exactly(
        r#"confab_auth_refusals_total{reason="bad_credentials"}"#,
        1.0,
    );
    exactly("confab_connections_opened_total", 2.0);
    exactly(closed, 1.0);
    assert_eq!(after.value("confab_connections_open"), 1.0);
    exactly(r#"confab_history_reads_total{kind="join"}"#, 2.0);
    exactly("confab_messages_received_total", SAID as f64);
    exactly("confab_messages_stored_total", SAID as f64);
    // Each message went to both people in the room, the sender included, in one
    // fan-out each.
    exactly("confab_messages_delivered_total", 2.0 * SAID as f64);
    exactly("confab_deliveries_per_message_count", SAID as f64);
    exactly("confab_deliveries_per_message_sum", 2.0 * SAID as f64);
    exactly(
        r#"confab_deliveries_per_message_bucket{le="2"}"#,
        SAID as f64,
    );
    exactly(r#"confab_deliveries_per_message_bucket{le="1"}"#, 0.0);
    exactly("confab_send_queue_depth_frames_count", SAID as f64);
    exactly("confab_slow_consumer_closes_total", 0.0);
    // Every message was committed, along with whatever else was written meanwhile
    // (the sign-up's rooms, the joins).
    let commits = moved(&before, &after, "confab_store_commit_batch_writes_count");
    let writes = moved(&before, &after, "confab_store_commit_batch_writes_sum");
    assert!(
        commits >= 1.0 && writes >= SAID as f64,
        "{commits} commits of {writes} writes"
    );
    assert_eq!(
        moved(
            &before,
            &after,
            "confab_store_commit_duration_seconds_count"
        ),
        commits
    );

    // Flooding: past its burst, a connection's messages are refused as rate limited.
    let mut before = after;
    let burst = 60; // --rate-limit-burst's default
    for n in 0..burst + 3 {
        ada.send_to("general", &format!("flood {n}")).await;
    }
    let limited = r#"confab_rate_limited_total{limit="messages"}"#;
    let after = scrape_until(metrics_addr, |s| moved(&before, s, limited) >= 3.0).await;
    assert!(moved(&before, &after, limited) >= 3.0);
    before = after;
    drop(ada);
    let broken = r#"confab_connections_closed_total{by="client",code="1006"}"#;
    let after = scrape_until(metrics_addr, |s| moved(&before, s, broken) >= 1.0).await;
    assert_eq!(
        moved(&before, &after, broken),
        1.0,
        "a socket dropped without a close frame"
    );
    assert_eq!(after.value("confab_connections_open"), 0.0);
}

#[tokio::test]
async fn the_main_port_serves_metrics_only_with_the_token() {
    let dir = tempfile::TempDir::new().expect("temporary dir");
    let addr = free_addr();
    let mut command = server_command(addr, &dir.path().join("data"));
    command
        .env("CONFAB_METRICS_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null());
    let _server = spawn_listening(command, addr).await;

    let none = http_get(addr, "/metrics").await;
    assert_eq!(none.status, 401, "{none:?}");
    assert!(none.headers.iter().any(|h| h == "www-authenticate: bearer"));
    let wrong = http_request(
        addr,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer not-the-token")],
        None,
    )
    .await;
    assert_eq!(wrong.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let right = http_request(addr, "GET", "/metrics", &[("Authorization", &bearer)], None).await;
    assert_eq!(right.status, 200, "{right:?}");
    let scrape = prometheus::parse(&right.body).unwrap_or_else(|e| panic!("{e}"));
    assert!(scrape.has("confab_connections_open"));
}

#[tokio::test]
async fn without_a_token_or_a_listener_there_is_no_metrics_endpoint() {
    let server = common::start().await;
    let resp = http_get(server.addr, "/metrics").await;
    assert_eq!(resp.status, 404, "{resp:?}");
    let with_token = http_request(
        server.addr,
        "GET",
        "/metrics",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        None,
    )
    .await;
    assert_eq!(with_token.status, 404);
}

/// Every metric name in `expr` (PromQL): identifiers of our families, wherever they
/// stand (inside `rate(...)`, `histogram_quantile(...)`, before `{`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    let mut in_quotes = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if !in_quotes && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
        } else {
            if word.starts_with("confab_") || word.starts_with("process_") {
                names.push(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    names
}

/// Every `expr` in the dashboard, wherever it is nested.
fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_grafana_dashboard_asks_only_for_series_the_server_exports() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("deploy/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(all.len() >= 8, "a dashboard of a few panels: {all:?}");

    let dir = tempfile::TempDir::new().expect("temporary dir");
    let (addr, metrics_addr) = (free_addr(), free_addr());
    let mut command = server_command(addr, &dir.path().join("data"));
    command
        .args(["--metrics-listen", &metrics_addr.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null());
    let _server = spawn_listening(command, addr).await;
    wait_listening(metrics_addr).await;
    let scrape = scrape(metrics_addr).await;

    let mut used = BTreeSet::new();
    for expr in &all {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr:?} names no series of ours");
        for name in names {
            // A histogram is asked for by its `_bucket`, `_sum` or `_count`.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|base| scrape.families.get(*base).is_some_and(|t| t == "histogram"))
                })
                .unwrap_or(&name);
            assert!(
                scrape.families.contains_key(family),
                "the dashboard asks for {name} ({expr:?}), which the server does not export"
            );
            used.insert(family.to_owned());
        }
    }
    // What an operator looks at first is all there.
    for needed in [
        "confab_connections_open",
        "confab_messages_delivered_total",
        "confab_store_commit_duration_seconds",
        "confab_rate_limited_total",
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(needed), "the dashboard shows {needed}");
    }
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le) (rate(confab_store_commit_duration_seconds_bucket{job="confab"}[5m])))"#
        ),
        ["confab_store_commit_duration_seconds_bucket"]
    );
    assert_eq!(
        metric_names(r#"sum by (code) (rate(confab_connections_closed_total{by="server"}[5m]))"#),
        ["confab_connections_closed_total"]
    );
    assert!(
        metric_names(r#"up{job="confab_x"}"#).is_empty(),
        "label values are not names"
    );
}
#[test]
fn the_reader_refuses_what_breaks_the_format() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n\
                # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
    let scrape = prometheus::parse(good).expect("a good scrape");
    assert_eq!(scrape.value(r#"a_total{x="1"}"#), 2.0);
    for bad in [
        "a_total 1\n",                                           // no family
        "# TYPE a counter\na 1\n",                               // counter without _total
        "# TYPE a gauge\na{x=1} 1\n",                            // unquoted label
        "# TYPE a gauge\na 1\na 2\n",                            // twice
        "# TYPE a gauge\n1a 1\n",                                // bad name
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n", // no +Inf
        "# TYPE a gauge\na one\n",                               // not a number
    ] {
        assert!(prometheus::parse(bad).is_err(), "{bad:?} is refused");
    }
}
