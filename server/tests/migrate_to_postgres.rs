//! `confab-server admin migrate-to-postgres` end to end, on the real binary and a real
//! PostgreSQL: a server on SQLite is used the way people use it (accounts, public and
//! private rooms, a direct conversation, replies, edits, deletions, reactions,
//! mentions, read markers, a mute, a shared image, an invite), stopped, migrated, and
//! started on PostgreSQL with an empty data directory. What its clients see must not
//! have changed: the same store (no reload), the same rooms and history, resumes from
//! old cursors, old sessions and passwords, the file's bytes; new messages carry on
//! the numbering.

mod common;

use std::{net::SocketAddr, path::Path};

use common::{
    Client, PASSWORD, TIMEOUT, fresh_client_id, http_get, http_post, http_request,
    process::{ServerProcess, free_addr, run_command},
    services::Postgres,
    sign_up,
};
use confab_shared::{
    ChatMessage, ClientMsg, PROTOCOL_VERSION, Person, RoomInfo, RoomKind, ServerMsg, api::Me,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

/// Every table of the PostgreSQL schema that holds data, for counting.
const TABLES: &[&str] = &[
    "rooms",
    "room_members",
    "users",
    "sessions",
    "invites",
    "messages",
    "changes",
    "reactions",
    "mentions",
    "read_markers",
    "file_blobs",
    "file_chunks",
    "file_thumbs",
    "file_uploads",
    "file_usage",
    "meta",
    "device_cookie_key",
];

/// Runs `confab-server` with `args`; its exit status and output.
async fn run(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let ran = run_command(args, stdin.unwrap_or_default()).await;
    (ran.ok, ran.stdout, ran.stderr)
}

async fn migrate(data_dir: &Path, url: &str) -> (bool, String, String) {
    let dir = data_dir.to_str().expect("UTF-8 path");
    run(
        &[
            "admin",
            "migrate-to-postgres",
            "--data-dir",
            dir,
            "--database-url",
            url,
        ],
        None,
    )
    .await
}

/// Rows per table, and the epoch and device key, read straight from PostgreSQL.
async fn pg_contents(url: &str) -> (Vec<(String, i64)>, String, Option<Vec<u8>>) {
    let url = url.to_owned();
    // The synchronous client must not run on a Tokio worker.
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let counts = TABLES
            .iter()
            .map(|t| {
                let n: i64 = client
                    .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                    .expect("count")
                    .get(0);
                ((*t).to_owned(), n)
            })
            .collect();
        let epoch: String = client
            .query_one("SELECT value FROM meta WHERE key = 'epoch'", &[])
            .expect("epoch")
            .get(0);
        let key: Option<Vec<u8>> = client
            .query_opt("SELECT key FROM device_cookie_key", &[])
            .expect("key")
            .map(|r| r.get(0));
        (counts, epoch, key)
    })
    .await
    .expect("the PostgreSQL read")
}

fn send(room: &str, body: &str, reply_to: Option<u64>, files: Vec<String>) -> ClientMsg {
    ClientMsg::Send {
        room: room.into(),
        body: body.into(),
        client_id: fresh_client_id(),
        reply_to,
        files,
    }
}

fn react(room: &str, seq: u64, emoji: &str) -> ClientMsg {
    ClientMsg::React {
        room: room.into(),
        seq,
        emoji: emoji.into(),
        client_id: fresh_client_id(),
    }
}

/// One request with a byte body, over its own connection; status and body bytes.
async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: {cookie}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(&req).await.expect("write request");
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await.expect("read response");
        raw
    };
    let raw = timeout(TIMEOUT, exchange).await.expect("answer in time");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, raw[split + 4..].to_vec())
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 13) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode PNG");
    out.into_inner()
}

/// A room as a joining client sees it, but who is online (which depends on who is
/// connected at the moment).
#[derive(Debug, PartialEq)]
struct SeenRoom {
    info: RoomInfo,
    members: Vec<Person>,
    member_count: usize,
    through: u64,
    read: u64,
    unread: u32,
    mentions: u32,
    history: Vec<ChatMessage>,
    /// `fetch_history` before the first message: nothing older.
    older: Vec<ChatMessage>,
}

/// Everything one person sees: the store's identity, then each room of their list
/// joined in turn.
#[derive(Debug, PartialEq)]
struct Seen {
    epoch: String,
    you: Person,
    rooms: Vec<SeenRoom>,
}

async fn seen_by(addr: SocketAddr, cookie: &str) -> Seen {
    let mut c = connect_signed_in(addr, cookie).await;
    c.send_json(&ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: None,
    })
    .await;
    let ServerMsg::Welcome {
        epoch,
        you,
        mut rooms,
        ..
    } = c.recv().await
    else {
        panic!("expected a welcome");
    };
    rooms.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seen = Seen {
        epoch,
        you,
        rooms: Vec::new(),
    };
    for mut info in rooms {
        info.online = 0;
        let public = info.kind == RoomKind::Public;
        c.send_json(&ClientMsg::Join {
            room: info.name.clone(),
            after: None,
        })
        .await;
        let ServerMsg::Joined {
            members,
            member_count,
            through,
            read,
            unread,
            mentions,
            history,
            ..
        } = c
            .recv_until(|m| matches!(m, ServerMsg::Joined { .. } | ServerMsg::Error { .. }))
            .await
        else {
            panic!("expected to join {}", info.name);
        };
        let first = history.first().map_or(1, |m| m.seq);
        c.send_json(&ClientMsg::FetchHistory {
            room: info.name.clone(),
            before: first,
            limit: None,
        })
        .await;
        let ServerMsg::History {
            messages: older, ..
        } = c
            .recv_until(|m| matches!(m, ServerMsg::History { .. } | ServerMsg::Error { .. }))
            .await
        else {
            panic!("expected older history of {}", info.name);
        };
        seen.rooms.push(SeenRoom {
            info,
            // A public room's are who is online in it, not who belongs.
            members: if public { Vec::new() } else { members },
            member_count,
            through,
            read,
            unread,
            mentions,
            history,
            older,
        });
    }
    seen
}

/// A socket with `cookie`, before its hello.
async fn connect_signed_in(addr: SocketAddr, cookie: &str) -> Client {
    let mut req = common::ws_request(addr);
    req.headers_mut().insert(
        "cookie",
        tokio_tungstenite::tungstenite::http::HeaderValue::from_str(cookie).expect("cookie"),
    );
    Client {
        ws: common::open(addr, req).await.expect("socket opens"),
    }
}

/// What a client holding `room` up to `after` gets when it resumes: every replay page
/// and the closing `joined`, as (through, messages).
async fn resume(
    addr: SocketAddr,
    cookie: &str,
    room: &str,
    after: u64,
) -> Vec<(u64, Vec<ChatMessage>)> {
    let mut c = Client::signed_in(addr, cookie).await;
    let mut pages = Vec::new();
    let mut after = after;
    loop {
        c.send_json(&ClientMsg::Join {
            room: room.into(),
            after: Some(after),
        })
        .await;
        match c
            .recv_until(|m| {
                matches!(
                    m,
                    ServerMsg::Replay { .. } | ServerMsg::Joined { .. } | ServerMsg::Error { .. }
                )
            })
            .await
        {
            ServerMsg::Replay {
                through, messages, ..
            } => {
                pages.push((through, messages));
                after = through;
            }
            ServerMsg::Joined {
                through, history, ..
            } => {
                pages.push((through, history));
                return pages;
            }
            other => panic!("resume of {room} refused: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_server_moves_to_postgres_and_its_clients_see_no_difference() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let old_dir = tempfile::tempdir().expect("tempdir");
    let dir = old_dir.path().to_str().expect("UTF-8").to_owned();

    // An administrator made from the command line, before the first start.
    let (ok, out, err) = run(
        &["admin", "create", "root", "--data-dir", &dir],
        Some(&format!("{PASSWORD}\n")),
    )
    .await;
    assert!(ok, "{out} {err}");

    let addr = free_addr();
    let server = ServerProcess::start_with(addr, old_dir.path(), &[]).await;
    let ada = sign_up(addr, "ada").await;
    let bob = sign_up(addr, "bob").await;
    let cy = sign_up(addr, "cy").await;
    let mut a = Client::signed_in(addr, &ada).await;
    let mut b = Client::signed_in(addr, &bob).await;
    let mut c = Client::signed_in(addr, &cy).await;

    // A public room: a mention, a reply, then (after the cursor) an edit, reactions
    // (one taken back), a deletion and a shared image.
    a.create_room("plans").await;
    a.join("plans").await;
    b.join("plans").await;
    a.join("general").await;
    b.join("general").await;
    c.join("plans").await;
    c.join("general").await;
    let m1 = a
        .acked(send("plans", "hello @bob, see the plan", None, vec![]))
        .await;
    let m2 = b.acked(send("plans", "on it", Some(m1), vec![])).await;
    let cursor = m2;
    a.acked(ClientMsg::Edit {
        room: "plans".into(),
        seq: m1,
        body: "hello @bob, see the new plan".into(),
        client_id: fresh_client_id(),
    })
    .await;
    b.acked(react("plans", m1, "👍")).await;
    a.acked(react("plans", m1, "👍")).await;
    a.acked(react("plans", m1, "🎉")).await;
    a.acked(ClientMsg::Unreact {
        room: "plans".into(),
        seq: m1,
        emoji: "🎉".into(),
        client_id: fresh_client_id(),
    })
    .await;
    let doomed = a.acked(send("plans", "a mistake", None, vec![])).await;
    a.acked(ClientMsg::Delete {
        room: "plans".into(),
        seq: doomed,
        client_id: fresh_client_id(),
    })
    .await;
    let image = png(640, 480);
    let (status, body) = raw_request(
        addr,
        "POST",
        "/api/files?room=plans&name=photo.png",
        &ada,
        &image,
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let file: confab_shared::Attachment = serde_json::from_slice(&body).expect("attachment");
    assert!(file.image.is_some(), "previewed: {file:?}");
    a.acked(send("plans", "the photo", None, vec![file.id.clone()]))
        .await;
    a.acked(send("general", "morning all", None, vec![])).await;
    b.acked(send("general", "hi @ada", None, vec![])).await;

    // A private room with bob invited, and a direct conversation with cy.
    let secret = a.create_private("secret").await;
    a.join(&secret).await;
    a.send_json(&ClientMsg::Invite {
        room: secret.clone(),
        user: "bob".into(),
    })
    .await;
    b.recv_until(|m| matches!(m, ServerMsg::RoomsChanged { rooms, .. } if rooms.iter().any(|r| r.name == secret)))
        .await;
    b.join(&secret).await;
    b.acked(send(&secret, "just us", None, vec![])).await;
    a.send_json(&ClientMsg::OpenDirect { user: "cy".into() })
        .await;
    let direct = match a
        .recv_until(|m| matches!(m, ServerMsg::Joined { .. } | ServerMsg::Error { .. }))
        .await
    {
        ServerMsg::Joined { room, .. } => room,
        other => panic!("expected the direct conversation, got {other:?}"),
    };
    a.acked(send(&direct, "psst @cy", None, vec![])).await;

    // Bob has read plans up to the reply, and muted general.
    b.send_json(&ClientMsg::MarkRead {
        room: "plans".into(),
        seq: m2,
    })
    .await;
    b.recv_until(|m| matches!(m, ServerMsg::Read { room, .. } if room == "plans"))
        .await;
    b.send_json(&ClientMsg::Mute {
        room: "general".into(),
        muted: true,
    })
    .await;
    b.recv_until(|m| matches!(m, ServerMsg::RoomsChanged { rooms, .. } if rooms.iter().any(|r| r.name == "general" && r.muted)))
        .await;

    // An invite made from the command line, used after the move.
    let (ok, out, err) = run(&["admin", "invite", "--data-dir", &dir], None).await;
    assert!(ok, "{out} {err}");
    let invite = out
        .lines()
        .find_map(|l| l.strip_prefix("/?invite="))
        .expect("the invite's path")
        .to_owned();
    drop((a, b, c));

    // While the server runs, the store is in use: refused, nothing written.
    let (ok, out, err) = migrate(old_dir.path(), &pg.url()).await;
    assert!(!ok, "{out}");
    assert!(err.contains("in use"), "{err}");

    // What each person sees before: twice, to be sure seeing it changes nothing.
    let people = [("ada", &ada), ("bob", &bob), ("cy", &cy)];
    let mut before = Vec::new();
    for (_, cookie) in people {
        let first = seen_by(addr, cookie).await;
        assert_eq!(first, seen_by(addr, cookie).await, "a look changes nothing");
        before.push(first);
    }
    let kinds: Vec<RoomKind> = before[0].rooms.iter().map(|r| r.info.kind).collect();
    for kind in [RoomKind::Public, RoomKind::Private, RoomKind::Direct] {
        assert!(kinds.contains(&kind), "ada has a {kind:?} room: {kinds:?}");
    }
    let resumed_before = resume(addr, &ada, "plans", cursor).await;
    let thumb_path = format!("/api/files/{}/thumb", file.id);
    let (status, thumb_before) = raw_request(addr, "GET", &thumb_path, &ada, b"").await;
    assert_eq!(status, 200);
    server.terminate().await;

    let (ok, out, err) = migrate(old_dir.path(), &pg.url()).await;
    assert!(ok, "{out} {err}");
    for (table, rows) in [
        ("users", 4),
        ("messages", 8),
        ("file_blobs", 1),
        ("file_thumbs", 1),
        ("file_uploads", 1),
        ("invites", 1),
    ] {
        assert!(
            out.lines().any(|l| {
                let mut words = l.split_whitespace();
                words.next() == Some(table) && words.next() == Some(&rows.to_string())
            }),
            "{table}: {rows} in the summary:\n{out}"
        );
    }
    let (counts, epoch, key) = pg_contents(&pg.url()).await;
    assert_eq!(epoch, before[0].epoch);
    let key_file = std::fs::read(old_dir.path().join("device-cookie.key")).expect("key file");
    assert_eq!(key, Some(key_file), "the device cookie key moved");

    // Again: refused, and nothing changed.
    let (ok, out, err) = migrate(old_dir.path(), &pg.url()).await;
    assert!(!ok, "{out}");
    assert!(err.contains("already holds Confab data"), "{err}");
    assert_eq!(
        pg_contents(&pg.url()).await.0,
        counts,
        "the second run wrote nothing"
    );

    // The server on PostgreSQL, with a data directory of its own (empty: the files'
    // bytes come from the database).
    let new_dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let url = pg.url();
    let server = ServerProcess::start_with(
        addr,
        new_dir.path(),
        &["--database-url", &url, "--sign-up", "invite"],
    )
    .await;
    for ((_, cookie), before) in people.iter().zip(&before) {
        assert_eq!(
            &seen_by(addr, cookie).await,
            before,
            "old sessions see the same"
        );
    }
    assert_eq!(
        resume(addr, &ada, "plans", cursor).await,
        resumed_before,
        "a resume from an old cursor gets the same"
    );
    let resumed: Vec<u64> = resumed_before
        .iter()
        .flat_map(|(_, ms)| ms.iter().map(|m| m.seq))
        .collect();
    assert!(
        resumed.contains(&m1) && !resumed.contains(&m2),
        "{resumed:?}"
    );

    let signed_in = common::sign_in(addr, "root", PASSWORD).await;
    assert_eq!(signed_in.status, 200, "{signed_in:?}");
    let root = signed_in.session_cookie().expect("a session");
    let me = http_request(addr, "GET", "/api/me", &[("cookie", &root)], None).await;
    assert!(me.json::<Me>().admin, "still an administrator");
    let wrong = common::sign_in(addr, "ada", "not her password").await;
    assert_eq!(wrong.status, 401, "{wrong:?}");

    let (status, got) =
        raw_request(addr, "GET", &format!("/api/files/{}", file.id), &ada, b"").await;
    assert_eq!((status, got == image), (200, true), "the same bytes");
    let (status, got) = raw_request(addr, "GET", &thumb_path, &ada, b"").await;
    assert_eq!(
        (status, got == thumb_before),
        (200, true),
        "the same preview"
    );

    // The invite signs someone up (and sign-up needs one: the policy is on).
    let refused = http_post(
        addr,
        "/api/signup",
        &[],
        &serde_json::json!({"username": "dee", "password": PASSWORD}),
    )
    .await;
    assert_ne!(refused.status, 201);
    let joined = http_post(
        addr,
        "/api/signup",
        &[],
        &serde_json::json!({"username": "dee", "password": PASSWORD, "invite": invite}),
    )
    .await;
    assert_eq!(joined.status, 201, "{joined:?}");

    // New entries carry on: the next seq of the room's log, an id above every old one.
    let plans = before[0]
        .rooms
        .iter()
        .find(|r| r.info.name == "plans")
        .expect("plans");
    let max_id = before
        .iter()
        .flat_map(|s| &s.rooms)
        .flat_map(|r| &r.history)
        .map(|m| m.id)
        .max()
        .expect("messages");
    let mut a = Client::signed_in(addr, &ada).await;
    a.join("plans").await;
    let next = a.say("plans", "from the cluster").await;
    assert_eq!(next.seq, plans.through + 1);
    assert!(next.id > max_id, "{} > {max_id}", next.id);
    assert_eq!(http_get(addr, "/healthz").await.status, 200);

    // The data directory was only read.
    assert!(old_dir.path().join("confab.sqlite3").is_file());
    server.terminate().await;
}

#[tokio::test]
async fn a_copy_that_fails_half_way_leaves_the_database_without_data() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let server = ServerProcess::start_with(addr, dir.path(), &[]).await;
    let ada = sign_up(addr, "ada").await;
    let mut a = Client::signed_in(addr, &ada).await;
    a.join("general").await;
    a.acked(send("general", "kept?", None, vec![])).await;
    let (status, body) = raw_request(
        addr,
        "POST",
        "/api/files?room=general&name=notes.txt",
        &ada,
        b"some notes",
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    drop(a);
    server.terminate().await;
    // The blob's bytes are lost from the disk: its row cannot be copied, and the rows
    // copied before it (the accounts, the messages) must not stay either.
    let blobs = dir.path().join("files").join("blobs");
    for shard in std::fs::read_dir(&blobs).expect("blobs").flatten() {
        std::fs::remove_dir_all(shard.path()).expect("remove the blob");
    }

    let (ok, out, err) = migrate(dir.path(), &pg.url()).await;
    assert!(!ok, "{out}");
    assert!(err.contains("copying the bytes of"), "{err}");
    let (counts, _, _) = pg_contents(&pg.url()).await;
    for (table, rows) in counts {
        let fresh = match table.as_str() {
            // A fresh schema's `general` and epoch.
            "rooms" | "meta" => 1,
            _ => 0,
        };
        assert_eq!(rows, fresh, "{table} as the schema made it");
    }
}
