//! The account rules of issue 15 against the real binary: a username under attack is not
//! locked out for its owner (throttled per username and address, only slowed per
//! username), common passwords are refused, and a password change signs out every other
//! session and closes its sockets. Addresses are simulated with `X-Forwarded-For` from a
//! trusted proxy (the test itself, on 127.0.0.1).

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Client, HttpResponse, PASSWORD, http_post, http_request,
    process::{ServerProcess, free_addr},
};
use confab_shared::{ClientMsg, ServerMsg, api::ApiError, close};
use serde_json::json;

/// Posts to `path` as the client at `from` (an address the trusted proxy names), with
/// the cookies in `cookie` (a `Cookie` header value, may be empty).
async fn post_from(
    addr: SocketAddr,
    path: &str,
    from: &str,
    cookie: &str,
    body: &serde_json::Value,
) -> HttpResponse {
    let mut headers = vec![("x-forwarded-for", from)];
    if !cookie.is_empty() {
        headers.push(("cookie", cookie));
    }
    http_post(addr, path, &headers, body).await
}

async fn sign_in_from(
    addr: SocketAddr,
    from: &str,
    cookie: &str,
    password: &str,
) -> (HttpResponse, Duration) {
    let started = Instant::now();
    let resp = post_from(
        addr,
        "/api/signin",
        from,
        cookie,
        &json!({"username": "ada", "password": password}),
    )
    .await;
    (resp, started.elapsed())
}

/// The cookies a response set, as one `Cookie` request header value.
fn cookies(resp: &HttpResponse) -> String {
    resp.set_cookies
        .iter()
        .filter_map(|c| c.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Only the device cookie of a response (a browser that signed out keeps it).
fn device_cookie(resp: &HttpResponse) -> String {
    resp.set_cookies
        .iter()
        .filter_map(|c| c.split(';').next())
        .find(|c| c.starts_with("confab_device="))
        .expect("a device cookie")
        .to_owned()
}

/// A server whose throttle numbers are small enough to reach in a test: 3 wrong
/// passwords per (username, address), 4 per username before slowing, at most 2 s.
async fn throttled_server(data: &std::path::Path) -> (ServerProcess, SocketAddr) {
    let addr = free_addr();
    let server = ServerProcess::start_with(
        addr,
        data,
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--sign-in-per-user-ip-per-min",
            "3",
            "--sign-in-per-user-per-min",
            "4",
            "--sign-in-max-delay-secs",
            "2",
        ],
    )
    .await;
    (server, addr)
}

#[tokio::test]
async fn a_guessed_username_stays_open_to_its_owner_while_guessers_are_refused_and_slowed() {
    let data = tempfile::tempdir().expect("tempdir");
    let (_server, addr) = throttled_server(data.path()).await;
    let home = "198.51.100.7";
    let signed_up = post_from(
        addr,
        "/api/signup",
        home,
        "",
        &json!({"username": "ada", "password": PASSWORD}),
    )
    .await;
    assert_eq!(signed_up.status, 201, "{signed_up:?}");
    let owners_browser = device_cookie(&signed_up);

    // The attacker's view from one address: 3 wrong passwords, then 429 with
    // Retry-After, even for the right password.
    let attacker = "203.0.113.1";
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            sign_in_from(addr, attacker, "", "guess guess")
                .await
                .0
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    let (refused, _) = sign_in_from(addr, attacker, "", PASSWORD).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    let retry_after: u64 = refused
        .headers
        .iter()
        .find_map(|h| h.strip_prefix("retry-after:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Retry-After");
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(
        refused.json::<ApiError>().retry_after_secs,
        Some(retry_after)
    );

    // From other addresses the guesses are not refused but slowed: 4 wrong passwords
    // for the username are free, then each waits a second more, at most 2 s.
    let mut waits = Vec::new();
    for k in 10..14 {
        let (resp, took) = sign_in_from(addr, &format!("203.0.113.{k}"), "", "guess guess").await;
        assert_eq!(resp.status, 401, "slowed, never refused: {resp:?}");
        waits.push(took);
    }
    eprintln!("guesses from new addresses took {waits:?}");
    assert!(waits[0] < Duration::from_millis(900), "{waits:?}");
    assert!(waits[1] >= Duration::from_millis(900), "{waits:?}");
    assert!(waits[2] >= Duration::from_millis(1900), "{waits:?}");
    assert!(waits[3] >= Duration::from_millis(1900), "{waits:?}");

    // Now a guesser keeps trying from ever new addresses while the owner signs in.
    let stop = Arc::new(AtomicBool::new(false));
    let guesses = Arc::new(AtomicUsize::new(0));
    let mut guessers = Vec::new();
    for g in 0..4u32 {
        let (stop, guesses) = (Arc::clone(&stop), Arc::clone(&guesses));
        guessers.push(tokio::spawn(async move {
            for k in 0..20u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let from = format!("192.0.2.{}", g * 20 + k + 1);
                let (resp, _) = sign_in_from(addr, &from, "", "guess guess").await;
                assert_eq!(resp.status, 401, "{resp:?}");
                guesses.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The owner's view: from their known browser, at a new address, no wait at all...
    let (known, known_took) = sign_in_from(addr, "198.51.100.99", &owners_browser, PASSWORD).await;
    assert_eq!(known.status, 200, "{known:?}");
    // ...from their usual address in a new browser, no 429 (the attacker's refusals are
    // theirs alone) and at most the slowing...
    let (home_new, home_took) = sign_in_from(addr, home, "", PASSWORD).await;
    assert_eq!(home_new.status, 200, "{home_new:?}");
    // ...and from the attacker's own address (a shared NAT) with the known browser.
    let (shared, shared_took) = sign_in_from(addr, attacker, &owners_browser, PASSWORD).await;
    assert_eq!(shared.status, 200, "{shared:?}");
    stop.store(true, Ordering::Relaxed);
    for g in guessers {
        g.await.expect("guesser");
    }
    eprintln!(
        "during {} guesses: known device {known_took:?}, new browser {home_took:?}, known device behind the attacker's address {shared_took:?}",
        guesses.load(Ordering::Relaxed)
    );
    assert!(known_took < Duration::from_millis(900), "{known_took:?}");
    assert!(shared_took < Duration::from_millis(900), "{shared_took:?}");
    assert!(home_took < Duration::from_secs(4), "bounded: {home_took:?}");
    assert!(guesses.load(Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn common_passwords_are_refused_at_sign_up_with_a_field_error() {
    let data = tempfile::tempdir().expect("tempdir");
    let (_server, addr) = throttled_server(data.path()).await;
    for common in ["password1", "Iloveyou1", "QWERTYUIOP"] {
        let resp = post_from(
            addr,
            "/api/signup",
            "198.51.100.1",
            "",
            &json!({"username": "ada", "password": common}),
        )
        .await;
        assert_eq!(resp.status, 400, "{common}: {resp:?}");
        let e: ApiError = resp.json();
        assert_eq!(e.field.as_deref(), Some("password"));
        assert!(e.error.contains("common"), "{e:?}");
    }
}

/// A signed-in WebSocket that has said hello.
async fn socket(addr: SocketAddr, cookie: &str) -> Client {
    let mut c = Client::signed_in(addr, cookie).await;
    c.send_json(&ClientMsg::ListRooms).await;
    assert!(matches!(
        c.recv_until(|m| matches!(m, ServerMsg::Rooms { .. })).await,
        ServerMsg::Rooms { .. }
    ));
    c
}

async fn me_status(addr: SocketAddr, cookie: &str) -> u16 {
    http_request(addr, "GET", "/api/me", &[("cookie", cookie)], None)
        .await
        .status
}

#[tokio::test]
async fn a_password_change_signs_out_every_other_session_and_closes_its_sockets() {
    let data = tempfile::tempdir().expect("tempdir");
    let (_server, addr) = throttled_server(data.path()).await;
    let from = "198.51.100.1";
    let phone = cookies(
        &post_from(
            addr,
            "/api/signup",
            from,
            "",
            &json!({"username": "ada", "password": PASSWORD}),
        )
        .await,
    );
    let (laptop, _) = sign_in_from(addr, from, "", PASSWORD).await;
    let laptop = cookies(&laptop);
    let mut on_phone = socket(addr, &phone).await;
    let mut on_laptop = socket(addr, &laptop).await;
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    // Refusals change nothing and name the field at fault.
    let refusals = [
        (
            "not the password",
            "brand new secret",
            "current_password",
            400,
        ),
        (PASSWORD, "password123", "new_password", 400),
        (PASSWORD, "short", "new_password", 400),
    ];
    for (current, new, field, status) in refusals {
        let resp = post_from(addr, "/api/password", from, &laptop, &change(current, new)).await;
        assert_eq!(resp.status, status, "{resp:?}");
        assert_eq!(
            resp.json::<ApiError>().field.as_deref(),
            Some(field),
            "{resp:?}"
        );
    }
    let anonymous = post_from(
        addr,
        "/api/password",
        from,
        "",
        &change(PASSWORD, "brand new secret"),
    )
    .await;
    assert_eq!(anonymous.status, 401);
    let foreign = http_post(
        addr,
        "/api/password",
        &[("cookie", &laptop), ("origin", "https://evil.example")],
        &change(PASSWORD, "brand new secret"),
    )
    .await;
    assert_eq!(foreign.status, 403);
    let big = post_from(
        addr,
        "/api/password",
        from,
        &laptop,
        &json!({"current_password": PASSWORD, "new_password": "x".repeat(8 * 1024)}),
    )
    .await;
    assert_eq!(big.status, 413);
    assert_eq!(me_status(addr, &phone).await, 200, "nothing changed yet");

    // The change: the phone's session ends and its socket is closed; the laptop stays.
    let changed = post_from(
        addr,
        "/api/password",
        from,
        &laptop,
        &change(PASSWORD, "brand new secret"),
    )
    .await;
    assert_eq!(changed.status, 204, "{changed:?}");
    let answered = Instant::now();
    assert_eq!(on_phone.expect_close().await, close::SIGNED_OUT);
    eprintln!(
        "the other session's socket closed {:?} after the 204",
        answered.elapsed()
    );
    assert_eq!(me_status(addr, &phone).await, 401);
    assert_eq!(me_status(addr, &laptop).await, 200);
    on_laptop.send_json(&ClientMsg::ListRooms).await;
    assert!(matches!(
        on_laptop
            .recv_until(|m| matches!(m, ServerMsg::Rooms { .. }))
            .await,
        ServerMsg::Rooms { .. }
    ));
    assert_eq!(
        sign_in_from(addr, "198.51.100.2", "", PASSWORD)
            .await
            .0
            .status,
        401
    );
    let (tablet, _) = sign_in_from(addr, "198.51.100.2", "", "brand new secret").await;
    assert_eq!(tablet.status, 200);
    let tablet = cookies(&tablet);
    let mut on_tablet = socket(addr, &tablet).await;

    // Signing out the other sessions, without a password change.
    let out = post_from(addr, "/api/signout-others", from, &laptop, &json!({})).await;
    assert_eq!(out.status, 204, "{out:?}");
    assert_eq!(on_tablet.expect_close().await, close::SIGNED_OUT);
    assert_eq!(me_status(addr, &tablet).await, 401);
    assert_eq!(me_status(addr, &laptop).await, 200);
    assert_eq!(
        post_from(addr, "/api/signout-others", from, "", &json!({}))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn guessing_the_current_password_in_a_stolen_session_is_throttled() {
    let data = tempfile::tempdir().expect("tempdir");
    let (_server, addr) = throttled_server(data.path()).await;
    let thief = "203.0.113.5";
    let session = cookies(
        &post_from(
            addr,
            "/api/signup",
            "198.51.100.1",
            "",
            &json!({"username": "ada", "password": PASSWORD}),
        )
        .await,
    );
    // The thief has the session but not the browser's device cookie.
    let session: String = session
        .split("; ")
        .filter(|c| c.starts_with("confab_session="))
        .collect();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            post_from(
                addr,
                "/api/password",
                thief,
                &session,
                &json!({"current_password": "a wrong guess", "new_password": "brand new secret"}),
            )
            .await
            .status,
        );
    }
    assert_eq!(statuses, [400, 400, 400, 429]);
}

/// The administrator made on the server's machine is held to the same rule: an
/// administrator's common password would be the most valuable guess of all.
#[tokio::test]
async fn the_admin_command_refuses_a_common_password() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().to_str().expect("UTF-8 path");
    let done = common::process::run_command(
        &["admin", "create", "root", "--data-dir", dir],
        "Password1\n",
    )
    .await;
    assert!(!done.ok, "{done:?}");
    assert!(done.stderr.contains("most common"), "{done:?}");
}
