//! An administrator's tools against the real binary: `confab-server admin …` run as a
//! separate process next to a running server (disabling closes the person's socket at
//! once, through the control socket), the admin page's `/api/admin/` endpoints (403 for
//! anyone but an administrator), password reset links, removing a message from a room
//! the administrator is not in, and the audit log that records all of it.

mod common;

use std::{net::SocketAddr, path::Path, time::Duration};

use common::{
    Client, HttpResponse, PASSWORD, http_get, http_post, http_request,
    process::{ServerProcess, free_addr, run_command},
    sign_in, sign_up,
};
use confab_shared::{
    ChangeKind, ServerMsg,
    api::{AdminDone, AdminRooms, AdminStats, AdminUsers, AuditLog},
    close,
};
use serde_json::json;

/// Runs `confab-server admin ARGS…` on `data_dir` as its own process; its standard
/// output, after checking it succeeded.
async fn admin(data_dir: &Path, args: &[&str]) -> String {
    let out = admin_status(data_dir, args).await;
    assert!(out.0, "admin {args:?} failed: {}", out.1);
    out.1
}

/// Whether `confab-server admin ARGS…` succeeded, and what it printed (both streams).
async fn admin_status(data_dir: &Path, args: &[&str]) -> (bool, String) {
    let dir = data_dir.to_str().expect("UTF-8 path");
    let ran = run_command(&[&["--data-dir", dir, "admin"], args].concat(), "").await;
    (ran.ok, ran.output())
}

async fn get_as(addr: SocketAddr, cookie: &str, path: &str) -> HttpResponse {
    http_request(addr, "GET", path, &[("Cookie", cookie)], None).await
}

async fn post_as(
    addr: SocketAddr,
    cookie: &str,
    path: &str,
    body: &serde_json::Value,
) -> HttpResponse {
    http_post(addr, path, &[("Cookie", cookie)], body).await
}

#[tokio::test]
async fn disabling_from_the_command_line_closes_the_socket_at_once_and_refuses_sign_in() {
    let data = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let server = ServerProcess::start(addr, data.path()).await;
    let bob = sign_up(addr, "bob").await;
    let mut socket = Client::signed_in(addr, &bob).await;

    let started = std::time::Instant::now();
    let out = admin(data.path(), &["disable", "bob"]).await;
    assert!(out.contains("Disabled bob"), "{out}");
    assert!(out.contains("closed bob's connections"), "{out}");
    assert_eq!(socket.expect_close().await, close::ACCOUNT_DISABLED);
    // The command's own start-up included: well within the bound a person notices.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let refused = sign_in(addr, "bob", PASSWORD).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("disabled"), "{refused:?}");
    // A wrong password still says only that.
    assert_eq!(sign_in(addr, "bob", "not bob's password").await.status, 401);
    // The old session is over.
    assert_eq!(get_as(addr, &bob, "/api/me").await.status, 401);
    let users = admin(data.path(), &["users", "bo"]).await;
    assert!(
        users
            .lines()
            .any(|l| l.starts_with("bob ") && l.contains("yes")),
        "{users}"
    );

    let out = admin(data.path(), &["enable", "bob"]).await;
    assert!(out.contains("Enabled bob"), "{out}");
    let again = sign_in(addr, "bob", PASSWORD).await;
    assert_eq!(again.status, 200, "{again:?}");
    let cookie = again.session_cookie().expect("a session");
    Client::signed_in(addr, &cookie).await;

    let audit = admin(data.path(), &["audit"]).await;
    let lines: Vec<&str> = audit.lines().skip(1).collect();
    assert!(
        lines[0].contains(" cli ") && lines[0].contains("enable"),
        "{audit}"
    );
    assert!(
        lines[1].contains(" cli ") && lines[1].contains("disable"),
        "{audit}"
    );
    assert!(
        admin_status(data.path(), &["disable", "nobody"])
            .await
            .1
            .contains("no account")
    );
    server.terminate().await;
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_once_and_ends_the_sessions() {
    let data = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let server = ServerProcess::start(addr, data.path()).await;
    let carol = sign_up(addr, "carol").await;
    let mut socket = Client::signed_in(addr, &carol).await;
    let out = admin(data.path(), &["reset-password", "carol"]).await;
    let path = out
        .lines()
        .find(|l| l.starts_with("/?reset="))
        .unwrap_or_else(|| panic!("a link in {out}"));
    let token = path.trim_start_matches("/?reset=");
    let reset = |password: &'static str| {
        let token = token.to_owned();
        async move {
            http_post(
                addr,
                "/api/password-reset",
                &[],
                &json!({"token": token, "new_password": password}),
            )
            .await
        }
    };
    // The rules for a new password hold.
    assert_eq!(reset("short").await.status, 400);
    let done = reset("a brand new horse").await;
    assert_eq!(done.status, 204, "{done:?}");
    assert_eq!(socket.expect_close().await, close::SIGNED_OUT);
    assert_eq!(sign_in(addr, "carol", PASSWORD).await.status, 401);
    assert_eq!(
        sign_in(addr, "carol", "a brand new horse").await.status,
        200
    );
    let again = reset("yet another horse").await;
    assert_eq!(again.status, 400, "used once: {again:?}");
    assert!(again.body.contains("used or has expired"), "{again:?}");
    server.terminate().await;
}

#[tokio::test]
async fn only_administrators_reach_the_admin_endpoints() {
    let data = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let server = ServerProcess::start(addr, data.path()).await;
    let ada = sign_up(addr, "ada").await;
    let bob = sign_up(addr, "bob").await;
    let gets = [
        "/api/admin/users",
        "/api/admin/users?q=a",
        "/api/admin/rooms",
        "/api/admin/stats",
        "/api/admin/audit",
    ];
    let posts = [
        "/api/admin/users/ada/disable",
        "/api/admin/users/ada/enable",
        "/api/admin/users/bob/grant",
        "/api/admin/users/ada/revoke",
        "/api/admin/users/ada/reset-password",
        "/api/admin/rooms/general/delete",
        "/api/admin/messages/remove",
    ];
    let body = json!({"room": "general", "seq": 1});
    for path in gets {
        assert_eq!(get_as(addr, &bob, path).await.status, 403, "GET {path}");
        assert_eq!(http_get(addr, path).await.status, 401, "GET {path}");
    }
    for path in posts {
        assert_eq!(
            post_as(addr, &bob, path, &body).await.status,
            403,
            "POST {path}"
        );
        assert_eq!(
            http_post(addr, path, &[], &body).await.status,
            401,
            "POST {path}"
        );
    }
    // Nothing above changed anything.
    let audit = admin(data.path(), &["audit"]).await;
    assert_eq!(audit.lines().count(), 1, "{audit}");

    let out = admin(data.path(), &["grant", "ada"]).await;
    assert!(out.contains("ada is an administrator"), "{out}");
    let users: AdminUsers = get_as(addr, &ada, "/api/admin/users?q=BO").await.json();
    assert_eq!(users.users.len(), 1);
    assert_eq!(users.users[0].username, "bob");
    assert!(!users.users[0].admin && !users.users[0].disabled);
    assert!(
        users.users[0].last_seen.is_some(),
        "signed up, so signed in"
    );
    // Another site's page cannot act with an administrator's cookie.
    let foreign = http_post(
        addr,
        "/api/admin/users/bob/disable",
        &[("Cookie", &ada), ("Origin", "https://evil.example")],
        &json!({}),
    )
    .await;
    assert_eq!(foreign.status, 403);
    // Nor can an administrator lock themselves out.
    let own = post_as(addr, &ada, "/api/admin/users/ada/disable", &json!({})).await;
    assert_eq!(own.status, 409, "{own:?}");
    let stats: AdminStats = get_as(addr, &ada, "/api/admin/stats").await.json();
    assert_eq!((stats.users, stats.disabled_users), (2, 0));
    assert!(stats.database_bytes > 0);

    // Disabled from the page: Bob's socket closes with 4003 there too.
    let mut bob_socket = Client::signed_in(addr, &bob).await;
    let done: AdminDone = post_as(addr, &ada, "/api/admin/users/bob/disable", &json!({}))
        .await
        .json();
    assert_eq!(done.done, "disabled bob");
    assert_eq!(bob_socket.expect_close().await, close::ACCOUNT_DISABLED);
    let reset: AdminDone = post_as(
        addr,
        &ada,
        "/api/admin/users/bob/reset-password",
        &json!({}),
    )
    .await
    .json();
    assert!(reset.link.is_some_and(|l| l.starts_with("/?reset=")));
    let log: AuditLog = get_as(addr, &ada, "/api/admin/audit").await.json();
    let seen: Vec<(&str, &str, &str)> = log
        .entries
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("@ada", "reset-password", "bob"),
            ("@ada", "disable", "bob"),
            ("cli", "grant", "ada"),
        ]
    );
    server.terminate().await;
}

#[tokio::test]
async fn an_administrator_removes_a_message_and_deletes_rooms_they_are_not_in() {
    let data = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let server = ServerProcess::start(addr, data.path()).await;
    let ada = sign_up(addr, "ada").await;
    let bob = sign_up(addr, "bob").await;
    admin(data.path(), &["grant", "ada"]).await;
    let mut bob_socket = Client::signed_in(addr, &bob).await;
    let secret = bob_socket.create_private("plans").await;
    bob_socket.join(&secret).await;
    bob_socket.create_room("lobby").await;
    let message = bob_socket.say(&secret, "something to remove").await;

    let done = post_as(
        addr,
        &ada,
        "/api/admin/messages/remove",
        &json!({"room": secret, "seq": message.seq}),
    )
    .await;
    assert_eq!(done.status, 200, "{done:?}");
    let changed = bob_socket
        .recv_until(|m| matches!(m, ServerMsg::Changed(c) if c.target == message.seq))
        .await;
    match changed {
        ServerMsg::Changed(c) => {
            assert_eq!(c.change, ChangeKind::Deleted);
            assert_eq!(c.by, "ada");
        }
        other => unreachable!("{other:?}"),
    }
    let missing = post_as(
        addr,
        &ada,
        "/api/admin/messages/remove",
        &json!({"room": secret, "seq": message.seq + 100}),
    )
    .await;
    assert_eq!(missing.status, 409, "{missing:?}");

    let rooms: AdminRooms = get_as(addr, &ada, "/api/admin/rooms").await.json();
    let plans = rooms
        .rooms
        .iter()
        .find(|r| r.name == secret)
        .expect("listed");
    assert_eq!(
        (plans.kind.as_str(), plans.members, plans.messages),
        ("private", 1, 0)
    );
    let table = admin(data.path(), &["rooms"]).await;
    assert!(
        table.contains("(plans)") && table.contains("private"),
        "{table}"
    );

    // From the command line, through the running server: Bob sees the room go.
    let out = admin(data.path(), &["delete-room", &secret]).await;
    assert!(out.contains("running server"), "{out}");
    bob_socket
        .recv_until(|m| matches!(m, ServerMsg::Left { room } if *room == secret))
        .await;
    let (ok, refused) = admin_status(data.path(), &["delete-room", "general"]).await;
    assert!(!ok && refused.contains("cannot be deleted"), "{refused}");

    // With no server running, straight in the store.
    server.terminate().await;
    let out = admin(data.path(), &["delete-room", "lobby"]).await;
    assert!(out.contains("Deleted room lobby"), "{out}");
    let table = admin(data.path(), &["rooms"]).await;
    assert!(
        !table.contains("lobby") && !table.contains(&secret),
        "{table}"
    );
    let stats = admin(data.path(), &["stats"]).await;
    assert!(
        stats.contains("accounts") && stats.contains("database bytes"),
        "{stats}"
    );
    let audit = admin(data.path(), &["audit"]).await;
    assert!(audit.contains("remove-message"), "{audit}");
    assert_eq!(audit.matches("delete-room").count(), 2, "{audit}");
}
