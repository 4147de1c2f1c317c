//! Accounts and access control through the real HTTP endpoints and real sockets: who
//! gets a socket, what a session cookie looks like, how sign-in resists guessing, and
//! that private rooms and direct conversations are invisible to everyone else.

mod common;

use std::net::SocketAddr;

use common::{
    Client, HttpResponse, PASSWORD, Server, http_get, http_post, open, sign_in, sign_up, start_with,
};
use confab_shared::{ClientMsg, ErrorCode, PROTOCOL_VERSION, RoomKind, ServerMsg, api::Me, close};
use serde_json::json;
use tokio_tungstenite::tungstenite::{
    Error as WsError,
    http::{HeaderName, HeaderValue},
};

/// A server that lets nobody in without an account (the default).
async fn start() -> Server {
    start_with(|c| c.allow_guests = false).await
}

/// The status a WebSocket handshake with these extra headers gets (101 if it opened).
async fn handshake_status(addr: SocketAddr, headers: &[(&str, &str)]) -> u16 {
    let mut req = common::ws_request(addr);
    for (name, value) in headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    match open(addr, req).await {
        Ok(_) => 101,
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("handshake failed oddly: {e}"),
    }
}

fn db(server: &Server) -> rusqlite::Connection {
    rusqlite::Connection::open(server.data_dir().join("confab.sqlite3")).expect("open db")
}

#[tokio::test]
async fn without_a_session_the_socket_is_refused_with_401() {
    let server = start().await;
    assert_eq!(handshake_status(server.addr, &[]).await, 401);
    // Guests are a choice of the server's operator, and then only without a cookie.
    let guests = start_with(|c| c.allow_guests = true).await;
    assert_eq!(handshake_status(guests.addr, &[]).await, 101);
}

#[tokio::test]
async fn forged_expired_and_signed_out_tokens_are_refused_with_401() {
    let server = start().await;
    let addr = server.addr;
    let forged = format!("confab_session={}", "A".repeat(43));
    assert_eq!(handshake_status(addr, &[("cookie", &forged)]).await, 401);

    let cookie = sign_up(addr, "ada").await;
    assert_eq!(handshake_status(addr, &[("cookie", &cookie)]).await, 101);
    db(&server)
        .execute("UPDATE sessions SET expires_at = 1", [])
        .expect("expire the session");
    assert_eq!(handshake_status(addr, &[("cookie", &cookie)]).await, 401);
    assert_eq!(
        common::http_request(addr, "GET", "/api/me", &[("cookie", &cookie)], None)
            .await
            .status,
        401
    );

    let resp = sign_in(addr, "ada", PASSWORD).await;
    let cookie = resp.session_cookie().expect("cookie");
    let out = http_post(addr, "/api/signout", &[("cookie", &cookie)], &json!({})).await;
    assert_eq!(out.status, 204);
    assert!(
        out.set_cookies.iter().any(|c| c.contains("Max-Age=0")),
        "the cookie is cleared: {out:?}"
    );
    assert_eq!(handshake_status(addr, &[("cookie", &cookie)]).await, 401);
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site_strict() {
    // The test client stands in for a TLS-terminating proxy too: only a trusted proxy
    // is believed about `X-Forwarded-Proto`.
    let server = start_with(|c| {
        c.allow_guests = false;
        c.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    let addr = server.addr;
    let resp = http_post(
        addr,
        "/api/signup",
        &[],
        &json!({"username": "Ada", "password": PASSWORD, "display_name": "Ada Lovelace"}),
    )
    .await;
    assert_eq!(resp.status, 201);
    let me: Me = resp.json();
    assert_eq!(
        (me.you.user.as_str(), me.you.name.as_str()),
        ("ada", "Ada Lovelace")
    );
    let set_cookie = &resp.set_cookies[0];
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=2592000"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    // Behind a TLS-terminating proxy the cookie is Secure.
    let tls = http_post(
        addr,
        "/api/signin",
        &[("x-forwarded-proto", "https")],
        &json!({"username": "ada", "password": PASSWORD}),
    )
    .await;
    assert!(tls.set_cookies[0].contains("Secure"), "{tls:?}");

    // The cookie signs in the socket as that account.
    let cookie = resp.session_cookie().expect("cookie");
    let mut req = common::ws_request(addr);
    req.headers_mut()
        .insert("cookie", HeaderValue::from_str(&cookie).expect("cookie"));
    let mut c = Client {
        ws: open(addr, req).await.expect("socket"),
    };
    c.send_json(&ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: Some("someone else".into()),
    })
    .await;
    match c.recv().await {
        ServerMsg::Welcome { you, .. } => {
            assert_eq!(
                (you.user.as_str(), you.name.as_str()),
                ("ada", "Ada Lovelace")
            );
            assert!(!you.guest);
        }
        other => panic!("expected a welcome, got {other:?}"),
    }
    let me = common::http_request(addr, "GET", "/api/me", &[("cookie", &cookie)], None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json::<Me>().you.user, "ada");
    assert_eq!(http_get(addr, "/api/me").await.status, 401);
}

#[tokio::test]
async fn usernames_are_unique_case_insensitively() {
    let server = start().await;
    sign_up(server.addr, "grace").await;
    let again = http_post(
        server.addr,
        "/api/signup",
        &[],
        &json!({"username": "GRACE", "password": PASSWORD}),
    )
    .await;
    assert_eq!(again.status, 409);
    assert!(again.body.contains("\"field\":\"username\""), "{again:?}");
    let short = http_post(
        server.addr,
        "/api/signup",
        &[],
        &json!({"username": "linus", "password": "short"}),
    )
    .await;
    assert_eq!(short.status, 400);
    assert!(short.body.contains("\"field\":\"password\""), "{short:?}");
}

#[tokio::test]
async fn password_hashes_are_salted_argon2id() {
    let server = start().await;
    sign_up(server.addr, "ada").await;
    sign_up(server.addr, "bob").await;
    let hashes: Vec<String> = db(&server)
        .prepare("SELECT password_hash FROM users ORDER BY username")
        .expect("query")
        .query_map([], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("hashes");
    assert_eq!(hashes.len(), 2);
    for hash in &hashes {
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains(PASSWORD));
    }
    assert_ne!(hashes[0], hashes[1], "same password, different salts");
}

#[tokio::test]
async fn guessing_passwords_is_throttled_per_username_and_per_address() {
    let server = start().await;
    let addr = server.addr;
    sign_up(addr, "ada").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(sign_in(addr, "ada", "not the password").await.status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    let blocked = sign_in(addr, "ada", PASSWORD).await;
    assert_eq!(blocked.status, 429, "even the right password waits");
    assert!(
        blocked
            .headers
            .iter()
            .any(|h| h.starts_with("retry-after:")),
        "{blocked:?}"
    );
    // Every failure reads the same, known user or not.
    let unknown = sign_in(addr, "nobody", "not the password").await;
    assert_eq!(unknown.status, 401);
    let wrong = start().await;
    sign_up(wrong.addr, "ada").await;
    assert_eq!(
        sign_in(wrong.addr, "ada", "not the password").await.body,
        unknown.body
    );

    // One address trying many usernames runs out as well.
    let server = start_with(|c| {
        c.allow_guests = false;
        c.sign_in_per_ip_per_min = 4.try_into().expect("non-zero");
    })
    .await;
    let mut statuses = Vec::new();
    for name in ["u1", "u2", "u3", "u4", "u5"] {
        statuses.push(sign_in(server.addr, name, "whatever1").await.status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429]);
}

#[tokio::test]
async fn a_foreign_origin_cannot_sign_up_sign_in_or_open_a_socket() {
    let server = start().await;
    let addr = server.addr;
    let cookie = sign_up(addr, "ada").await;
    let evil = [("origin", "https://evil.example")];
    let body = json!({"username": "ada", "password": PASSWORD});
    assert_eq!(
        http_post(addr, "/api/signin", &evil, &body).await.status,
        403
    );
    let body = json!({"username": "mallory", "password": PASSWORD});
    assert_eq!(
        http_post(addr, "/api/signup", &evil, &body).await.status,
        403
    );
    let out = http_post(
        addr,
        "/api/signout",
        &[evil[0], ("cookie", &cookie)],
        &json!({}),
    )
    .await;
    assert_eq!(out.status, 403);
    assert_eq!(
        handshake_status(addr, &[evil[0], ("cookie", &cookie)]).await,
        403
    );
    // The same requests from the page's own origin work.
    let own = format!("http://{addr}");
    let own = [("origin", own.as_str())];
    let body = json!({"username": "ada", "password": PASSWORD});
    assert_eq!(
        http_post(addr, "/api/signin", &own, &body).await.status,
        200
    );
    assert_eq!(
        handshake_status(addr, &[own[0], ("cookie", &cookie)]).await,
        101
    );
}

/// Everything a client could ask about room `id`, and the error code of each answer,
/// with the id masked so answers about different rooms compare equal.
async fn probe(c: &mut Client, id: &str) -> Vec<String> {
    let requests = [
        ClientMsg::Join {
            room: id.into(),
            after: None,
        },
        ClientMsg::Join {
            room: id.into(),
            after: Some(0),
        },
        ClientMsg::Send {
            room: id.into(),
            body: "let me in".into(),
            client_id: common::fresh_client_id(),
            reply_to: None,
            files: Vec::new(),
        },
        ClientMsg::FetchHistory {
            room: id.into(),
            before: 1_000,
            limit: None,
        },
        ClientMsg::Typing { room: id.into() },
        ClientMsg::Invite {
            room: id.into(),
            user: "carol".into(),
        },
        ClientMsg::RenameRoom {
            room: id.into(),
            title: "mine".into(),
        },
        ClientMsg::DeleteRoom { room: id.into() },
    ];
    let mut answers = Vec::new();
    for request in &requests {
        c.send_json(request).await;
        let reply = c.recv().await;
        assert!(
            matches!(
                reply,
                ServerMsg::Error {
                    code: ErrorCode::UnknownRoom,
                    ..
                }
            ),
            "{request:?} got {reply:?}"
        );
        let masked = reply.to_json().replace(id, "ROOM");
        // Client ids differ per request; the rest must not.
        answers.push(
            masked
                .split("\"client_id\"")
                .next()
                .unwrap_or("")
                .to_owned(),
        );
    }
    answers
}

#[tokio::test]
async fn a_non_member_learns_nothing_about_private_rooms_and_direct_messages() {
    let server = start().await;
    let addr = server.addr;
    let ada_cookie = sign_up(addr, "ada").await;
    let bob_cookie = sign_up(addr, "bob").await;
    let carol_cookie = sign_up(addr, "carol").await;
    let mut ada = Client::signed_in(addr, &ada_cookie).await;
    let mut bob = Client::signed_in(addr, &bob_cookie).await;
    let mut carol = Client::signed_in(addr, &carol_cookie).await;

    ada.send_json(&ClientMsg::CreateRoom {
        room: "plans".into(),
        private: true,
    })
    .await;
    let plans = match ada
        .recv_until(|m| {
            matches!(
                m,
                ServerMsg::RoomsChanged {
                    created: Some(_),
                    ..
                }
            )
        })
        .await
    {
        ServerMsg::RoomsChanged {
            created: Some(id),
            rooms,
            ..
        } => {
            let info = rooms.iter().find(|r| r.name == id).expect("listed");
            assert_eq!(
                (info.kind, info.title.as_str()),
                (RoomKind::Private, "plans")
            );
            id
        }
        _ => unreachable!(),
    };
    ada.join(&plans).await;
    ada.say(&plans, "the private plan").await;
    ada.send_json(&ClientMsg::OpenDirect { user: "bob".into() })
        .await;
    let (dm, _) = match ada
        .recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
        .await
    {
        ServerMsg::Joined { room, history, .. } => (room, history),
        _ => unreachable!(),
    };
    ada.say(&dm, "just between us").await;
    bob.expect_room_list_with(&dm).await;
    bob.join(&dm).await;
    // Sync points: everything queued for Ada and Bob so far is read.
    for member in [&mut ada, &mut bob] {
        member.send_json(&ClientMsg::ListRooms).await;
        member
            .recv_until(|m| matches!(m, ServerMsg::Rooms { .. }))
            .await;
    }

    // Carol's room list has neither; every request about them is answered exactly as
    // one about a room that does not exist.
    carol.send_json(&ClientMsg::ListRooms).await;
    match carol.recv().await {
        ServerMsg::Rooms { rooms, .. } => {
            let names: Vec<_> = rooms.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(names, ["general"]);
        }
        other => panic!("expected rooms, got {other:?}"),
    }
    let none = probe(&mut carol, "_pdoesnotexist000").await;
    assert_eq!(probe(&mut carol, &plans).await, none);
    assert_eq!(probe(&mut carol, &dm).await, none);
    carol
        .send_json(&ClientMsg::OpenDirect {
            user: "carol".into(),
        })
        .await;
    carol.expect_error(ErrorCode::Forbidden).await;

    // Nothing of that reached the members: the next frame each gets is the answer
    // to their own next request.
    for member in [&mut ada, &mut bob] {
        member.send_json(&ClientMsg::ListRooms).await;
        assert!(matches!(member.recv().await, ServerMsg::Rooms { .. }));
    }
    ada.say(&plans, "still private").await;

    // Invited, Carol sees the room and its history.
    ada.send_json(&ClientMsg::Invite {
        room: plans.clone(),
        user: "carol".into(),
    })
    .await;
    carol.expect_room_list_with(&plans).await;
    let (_, history) = carol.join(&plans).await;
    let bodies: Vec<_> = history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["the private plan", "still private"]);
}

#[tokio::test]
async fn signing_out_closes_open_sockets_with_4002() {
    let server = start().await;
    let addr = server.addr;
    let phone = sign_up(addr, "ada").await;
    let laptop = sign_in(addr, "ada", PASSWORD)
        .await
        .session_cookie()
        .expect("cookie");
    let mut on_phone = Client::signed_in(addr, &phone).await;
    let mut on_laptop = Client::signed_in(addr, &laptop).await;
    let out = http_post(addr, "/api/signout", &[("cookie", &phone)], &json!({})).await;
    assert_eq!(out.status, 204);
    assert_eq!(on_phone.expect_close().await, close::SIGNED_OUT);
    // The other device is still signed in until it signs out everywhere.
    on_laptop.send_json(&ClientMsg::ListRooms).await;
    assert!(matches!(on_laptop.recv().await, ServerMsg::Rooms { .. }));
    let out = http_post(
        addr,
        "/api/signout",
        &[("cookie", &laptop)],
        &json!({"everywhere": true}),
    )
    .await;
    assert_eq!(out.status, 204);
    assert_eq!(on_laptop.expect_close().await, close::SIGNED_OUT);
}

#[tokio::test]
async fn the_admin_command_creates_an_administrator() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().to_str().expect("UTF-8 path");
    let done = common::process::run_command(
        &[
            "admin",
            "create",
            "root",
            "--display-name",
            "The Admin",
            "--data-dir",
            dir,
        ],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(done.ok, "{done:?}");

    let data_dir = data.path().to_owned();
    let server = start_with(move |c| {
        c.allow_guests = false;
        c.data_dir = data_dir;
    })
    .await;
    let resp = sign_in(server.addr, "root", PASSWORD).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let me: Me = resp.json();
    assert!(me.admin);
    assert_eq!(me.you.name, "The Admin");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_sign_in_budget() {
    let server = start_with(|c| {
        c.allow_guests = false;
        c.sign_in_per_ip_per_min = 2.try_into().expect("non-zero");
        c.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    let attempt = |client: &'static str| {
        let addr = server.addr;
        async move {
            http_post(
                addr,
                "/api/signin",
                &[("x-forwarded-for", client)],
                &json!({"username": "nobody", "password": "whatever1"}),
            )
            .await
            .status
        }
    };
    assert_eq!(attempt("203.0.113.1").await, 401);
    assert_eq!(attempt("203.0.113.1").await, 401);
    assert_eq!(attempt("203.0.113.1").await, 429);
    // Another client behind the same proxy is not throttled for the first one's tries;
    // a forged address prepended by the client itself changes nothing.
    assert_eq!(attempt("203.0.113.2").await, 401);
    assert_eq!(attempt("6.6.6.6, 203.0.113.1").await, 429);
}

/// The account endpoints read small bodies only: anything over 4 KiB is refused with 413
/// before it is parsed (axum's default would buffer and parse 2 MB per request).
#[tokio::test]
async fn account_requests_with_large_bodies_are_refused_with_413() {
    let server = start().await;
    let addr = server.addr;
    let padding = "x".repeat(64 * 1024);
    for path in ["/api/signin", "/api/signup", "/api/signout"] {
        let big = json!({"username": "ada", "password": PASSWORD, "padding": padding});
        assert_eq!(http_post(addr, path, &[], &big).await.status, 413, "{path}");
    }
    // An ordinary request still gets its ordinary answer.
    assert_eq!(sign_in(addr, "nobody", PASSWORD).await.status, 401);
}

/// The connection caps are checked before the session: a client over them costs a
/// counter, never a store lookup, whatever cookie it sends (or none).
#[tokio::test]
async fn the_connection_caps_come_before_any_session_lookup() {
    let server = start_with(|c| {
        c.allow_guests = false;
        c.max_connections_per_ip = 1;
    })
    .await;
    let addr = server.addr;
    let cookie = sign_up(addr, "ada").await;
    let _open = Client::signed_in(addr, &cookie).await;
    assert_eq!(
        handshake_status(addr, &[]).await,
        429,
        "over the cap: 429, not 401"
    );
    assert_eq!(
        handshake_status(addr, &[("Cookie", cookie.as_str())]).await,
        429
    );
}

/// Over TLS the session cookie is `__Host-confab_session`: Secure, `Path=/`, host-only.
/// A plain `confab_session` (planted by a sibling subdomain, say) is not a session there,
/// also when it sits beside the real one.
#[tokio::test]
async fn over_tls_the_session_cookie_is_host_prefixed_and_a_planted_one_is_ignored() {
    let server = start_with(|c| {
        c.allow_guests = false;
        c.secure_cookies = true;
    })
    .await;
    let addr = server.addr;
    let signed_up = http_post(
        addr,
        "/api/signup",
        &[],
        &json!({"username": "ada", "password": PASSWORD}),
    )
    .await;
    assert_eq!(signed_up.status, 201);
    let set = signed_up
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-confab_session="))
        .expect("a __Host- session cookie");
    assert!(set.contains("Secure") && set.contains("Path=/"), "{set}");
    assert!(!set.contains("Domain"), "{set}");
    let real = signed_up.session_cookie().expect("a session cookie");
    let token = real
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .expect("a value");

    let me = |cookie: String| async move {
        http_get_with(addr, "/api/me", &[("Cookie", cookie.as_str())])
            .await
            .status
    };
    assert_eq!(me(real.clone()).await, 200);
    assert_eq!(me(format!("confab_session=planted; {real}")).await, 200);
    // The same token under the unprefixed name is not the session on a TLS server.
    assert_eq!(me(format!("confab_session={token}")).await, 401);
}

async fn http_get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    common::http_request(addr, "GET", path, headers, None).await
}
