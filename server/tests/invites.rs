//! The sign-up policy (`--sign-up open|invite|closed`) and invite links, through the
//! real HTTP endpoints and the real `admin invite` command: who may sign up, what a
//! refused sign-up is told, and that an invite gives exactly as many accounts as it has
//! uses, even to sign-ups racing for the last one.

mod common;

use std::net::SocketAddr;

use common::{HttpResponse, PASSWORD, Server, http_get, http_post, http_request, start_with};
use confab_server::{
    accounts::Accounts,
    store::{Database, Durability},
};
use confab_shared::{
    DisplayName, Password, Username,
    api::{ApiError, CreatedInvite, Invites, Me, SignUpPolicy},
};
use serde_json::json;

async fn start(policy: SignUpPolicy) -> Server {
    start_with(|c| {
        c.allow_guests = false;
        c.sign_up = policy;
    })
    .await
}

/// Makes `username` an administrator straight in the store (as `admin create` does)
/// and signs in over HTTP; returns the session cookie.
async fn admin(server: &Server, username: &str) -> String {
    // Once the server answers it has made the database: two first opens at once would
    // both try to create it.
    assert_eq!(http_get(server.addr, "/healthz").await.status, 200);
    let dir = server.data_dir().to_owned();
    let name = username.to_owned();
    tokio::task::spawn_blocking(move || {
        let accounts =
            Accounts::open(&Database::sqlite(&dir, Durability::Process)).expect("open accounts");
        accounts
            .sign_up(
                &Username::parse(&name).expect("username"),
                &DisplayName::parse(&name).expect("name"),
                &Password::parse(PASSWORD).expect("password"),
                true,
            )
            .expect("admin created");
    })
    .await
    .expect("blocking task");
    let resp = common::sign_in(server.addr, username, PASSWORD).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    resp.session_cookie().expect("cookie")
}

async fn sign_up(addr: SocketAddr, username: &str, invite: Option<&str>) -> HttpResponse {
    let mut body = json!({"username": username, "password": PASSWORD});
    if let Some(invite) = invite {
        body["invite"] = json!(invite);
    }
    http_post(addr, "/api/signup", &[], &body).await
}

async fn create_invite(addr: SocketAddr, cookie: &str, body: serde_json::Value) -> HttpResponse {
    http_post(addr, "/api/invites", &[("cookie", cookie)], &body).await
}

/// An invite made by the holder of `cookie`; its secret.
async fn invite(addr: SocketAddr, cookie: &str, uses: u32) -> String {
    let resp = create_invite(addr, cookie, json!({"uses": uses})).await;
    assert_eq!(resp.status, 201, "{resp:?}");
    let created: CreatedInvite = resp.json();
    assert_eq!(created.path, format!("/?invite={}", created.token));
    assert_eq!(
        (created.invite.max_uses, created.invite.uses_left),
        (uses, uses)
    );
    created.token
}

async fn list(addr: SocketAddr, cookie: &str) -> Invites {
    let resp = http_request(addr, "GET", "/api/invites", &[("cookie", cookie)], None).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    resp.json()
}

fn refused(resp: &HttpResponse, status: u16, says: &str) {
    assert_eq!(resp.status, status, "{resp:?}");
    let error: ApiError = resp.json();
    assert!(error.error.contains(says), "{says:?} in {error:?}");
    assert!(resp.session_cookie().is_none(), "no session: {resp:?}");
}

fn db(server: &Server) -> rusqlite::Connection {
    rusqlite::Connection::open(server.data_dir().join("confab.sqlite3")).expect("open db")
}

#[tokio::test]
async fn open_sign_up_needs_no_invite_and_says_so() {
    let server = start(SignUpPolicy::Open).await;
    let me = http_get(server.addr, "/api/me").await;
    assert_eq!(me.status, 401);
    assert_eq!(me.json::<ApiError>().sign_up, Some(SignUpPolicy::Open));
    let resp = sign_up(server.addr, "ada", None).await;
    assert_eq!(resp.status, 201, "{resp:?}");
    let me: Me = resp.json();
    assert_eq!(me.sign_up, SignUpPolicy::Open);
    assert!(!me.can_invite, "members do not invite by default");
    // An invite is not needed, and a link given anyway is not used up.
    let cookie = admin(&server, "root").await;
    let token = invite(server.addr, &cookie, 1).await;
    assert_eq!(sign_up(server.addr, "bob", Some(&token)).await.status, 201);
    assert_eq!(list(server.addr, &cookie).await.invites[0].uses_left, 1);
}

#[tokio::test]
async fn closed_sign_up_refuses_everyone_but_guests_and_admin_made_accounts_still_work() {
    let server = start_with(|c| {
        c.allow_guests = true;
        c.sign_up = SignUpPolicy::Closed;
    })
    .await;
    let me = http_get(server.addr, "/api/me").await;
    assert_eq!(me.json::<ApiError>().sign_up, Some(SignUpPolicy::Closed));
    refused(
        &sign_up(server.addr, "ada", None).await,
        403,
        "not taking new accounts",
    );
    let cookie = admin(&server, "root").await;
    let token = invite(server.addr, &cookie, 1).await;
    refused(
        &sign_up(server.addr, "ada", Some(&token)).await,
        403,
        "not taking new accounts",
    );
    let count: i64 = db(&server)
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .expect("count");
    assert_eq!(count, 1, "only the administrator");
    // Guests are `--allow-guests` alone.
    let mut guest = common::Client::connect(server.addr).await;
    guest.hello("Visitor").await;
}

#[tokio::test]
async fn invite_sign_up_needs_a_good_invite_and_uses_it_up() {
    let server = start(SignUpPolicy::Invite).await;
    let addr = server.addr;
    refused(
        &sign_up(addr, "ada", None).await,
        403,
        "need an invite link",
    );
    refused(
        &sign_up(addr, "ada", Some("")).await,
        403,
        "need an invite link",
    );
    refused(
        &sign_up(addr, "ada", Some(&"A".repeat(43))).await,
        403,
        "not valid",
    );
    let cookie = admin(&server, "root").await;
    let me = http_request(addr, "GET", "/api/me", &[("cookie", &cookie)], None).await;
    let me: Me = me.json();
    assert!(
        me.can_invite && me.sign_up == SignUpPolicy::Invite,
        "{me:?}"
    );

    let token = invite(addr, &cookie, 2).await;
    let ada = sign_up(addr, "ada", Some(&token)).await;
    assert_eq!(ada.status, 201, "{ada:?}");
    assert!(ada.session_cookie().is_some());
    // A taken username does not spend a use.
    assert_eq!(sign_up(addr, "ada", Some(&token)).await.status, 409);
    assert_eq!(sign_up(addr, "bob", Some(&token)).await.status, 201);
    refused(&sign_up(addr, "cy", Some(&token)).await, 403, "used up");

    let listed = list(addr, &cookie).await.invites;
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].max_uses, listed[0].uses_left), (2, 0));
    assert_eq!(listed[0].created_by.as_deref(), Some("root"));
    assert!(
        !serde_json::to_string(&listed)
            .expect("json")
            .contains(&token),
        "a listing never shows the secret"
    );
}

#[tokio::test]
async fn expired_and_revoked_invites_are_refused_clearly() {
    let server = start(SignUpPolicy::Invite).await;
    let addr = server.addr;
    let cookie = admin(&server, "root").await;
    let soon_expired = invite(addr, &cookie, 5).await;
    db(&server)
        .execute("UPDATE invites SET expires_at = 1", [])
        .expect("expire it");
    refused(
        &sign_up(addr, "ada", Some(&soon_expired)).await,
        403,
        "expired",
    );
    assert!(
        list(addr, &cookie).await.invites.is_empty(),
        "expired ones are not listed"
    );

    let revoked = invite(addr, &cookie, 5).await;
    let id = list(addr, &cookie).await.invites[0].id;
    let path = format!("/api/invites/{id}");
    let gone = http_request(addr, "DELETE", &path, &[("cookie", &cookie)], None).await;
    assert_eq!(gone.status, 204, "{gone:?}");
    refused(
        &sign_up(addr, "ada", Some(&revoked)).await,
        403,
        "not valid",
    );
    let again = http_request(addr, "DELETE", &path, &[("cookie", &cookie)], None).await;
    refused(&again, 404, "no such invite");
}

#[tokio::test]
async fn sign_ups_racing_for_a_single_use_invite_make_one_account() {
    let server = start(SignUpPolicy::Invite).await;
    let addr = server.addr;
    let cookie = admin(&server, "root").await;
    let token = invite(addr, &cookie, 1).await;
    let racers: Vec<_> = (0..10)
        .map(|n| {
            let token = token.clone();
            tokio::spawn(async move { sign_up(addr, &format!("racer{n}"), Some(&token)).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for racer in racers {
        let resp = racer.await.expect("task");
        if resp.status != 201 {
            refused(&resp, 403, "used up");
        }
        statuses.push(resp.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    let count: i64 = db(&server)
        .query_row(
            "SELECT count(*) FROM users WHERE username LIKE 'racer%'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(count, 1);
}

#[tokio::test]
async fn members_invite_only_when_allowed_and_manage_only_their_own() {
    let strict = start(SignUpPolicy::Invite).await;
    let root = admin(&strict, "root").await;
    let token = invite(strict.addr, &root, 1).await;
    let member = sign_up(strict.addr, "ada", Some(&token)).await;
    assert!(!member.json::<Me>().can_invite);
    let member = member.session_cookie().expect("cookie");
    refused(
        &create_invite(strict.addr, &member, json!({})).await,
        403,
        "Only administrators",
    );

    let server = start_with(|c| {
        c.allow_guests = false;
        c.sign_up = SignUpPolicy::Invite;
        c.members_invite = true;
    })
    .await;
    let addr = server.addr;
    let root = admin(&server, "root").await;
    let token = invite(addr, &root, 1).await;
    let ada = sign_up(addr, "ada", Some(&token)).await;
    assert!(ada.json::<Me>().can_invite);
    let ada = ada.session_cookie().expect("cookie");
    let hers = invite(addr, &ada, 1).await;
    let mine = list(addr, &ada).await.invites;
    assert_eq!(mine.len(), 1, "a member sees her own only: {mine:?}");
    assert_eq!(mine[0].created_by.as_deref(), Some("ada"));
    assert_eq!(
        list(addr, &root).await.invites.len(),
        2,
        "an admin sees all"
    );
    // Not hers: 404, as if it did not exist.
    let roots = list(addr, &root)
        .await
        .invites
        .into_iter()
        .find(|i| i.created_by.as_deref() == Some("root"))
        .expect("root's invite");
    let path = format!("/api/invites/{}", roots.id);
    let resp = http_request(addr, "DELETE", &path, &[("cookie", &ada)], None).await;
    refused(&resp, 404, "no such invite");
    assert_eq!(sign_up(addr, "bob", Some(&hers)).await.status, 201);
}

#[tokio::test]
async fn invite_requests_are_checked_like_the_other_account_endpoints() {
    let server = start_with(|c| {
        c.allow_guests = false;
        c.sign_up = SignUpPolicy::Invite;
        c.invites_per_person = std::num::NonZeroU32::new(2).expect("non-zero");
    })
    .await;
    let addr = server.addr;
    refused(
        &create_invite(addr, "", json!({})).await,
        401,
        "not signed in",
    );
    assert_eq!(http_get(addr, "/api/invites").await.status, 401);
    let cookie = admin(&server, "root").await;
    let foreign = http_post(
        addr,
        "/api/invites",
        &[("cookie", &cookie), ("origin", "http://evil.example")],
        &json!({}),
    )
    .await;
    refused(&foreign, 403, "origin not allowed");
    let foreign = http_request(
        addr,
        "DELETE",
        "/api/invites/1",
        &[("cookie", &cookie), ("origin", "http://evil.example")],
        None,
    )
    .await;
    refused(&foreign, 403, "origin not allowed");
    refused(
        &create_invite(addr, &cookie, json!({"uses": 0})).await,
        400,
        "from 1 to 100 uses",
    );
    refused(
        &create_invite(addr, &cookie, json!({"expires_in_secs": 31 * 86_400})).await,
        400,
        "1 minute to 30 days",
    );
    let big = json!({"uses": 1, "padding": "x".repeat(5_000)});
    assert_eq!(create_invite(addr, &cookie, big).await.status, 413);
    invite(addr, &cookie, 1).await;
    invite(addr, &cookie, 1).await;
    refused(
        &create_invite(addr, &cookie, json!({})).await,
        429,
        "revoke one first",
    );
}

#[tokio::test]
async fn admin_invite_prints_a_link_path_that_signs_up() {
    let server = start(SignUpPolicy::Invite).await;
    assert_eq!(http_get(server.addr, "/healthz").await.status, 200);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_confab-server"))
        .args(["admin", "invite", "--uses", "2", "--expires-in", "1h"])
        .arg("--data-dir")
        .arg(server.data_dir())
        .output()
        .expect("run admin invite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 uses, good for 1 hour"), "{stdout}");
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("/?invite="))
        .expect("a line with the link's path");
    assert_eq!(sign_up(server.addr, "ada", Some(token)).await.status, 201);
    let created_by: Option<String> = db(&server)
        .query_row("SELECT created_by FROM invites", [], |r| r.get(0))
        .expect("row");
    assert_eq!(created_by, None, "made from the command line");

    let over = std::process::Command::new(env!("CARGO_BIN_EXE_confab-server"))
        .args(["admin", "invite", "--expires-in", "60d"])
        .arg("--data-dir")
        .arg(server.data_dir())
        .output()
        .expect("run admin invite");
    assert!(!over.status.success());
    assert!(
        String::from_utf8_lossy(&over.stderr).contains("1 minute to 30 days"),
        "{over:?}"
    );
}
