//! Search and opening a room far back (`fetch_around`), against the real binary: what a
//! person finds is exactly what they may see, as it is now.

mod common;

use common::{
    Client, fresh_client_id, http_request,
    process::{ServerProcess, free_addr},
    sign_up,
};
use confab_shared::{Attachment, ClientMsg, ErrorCode, ServerMsg};

/// The binary, with room for the tests' bursts of messages.
async fn start(addr: std::net::SocketAddr, dir: &std::path::Path) -> ServerProcess {
    ServerProcess::start_with(
        addr,
        dir,
        &["--rate-limit-burst", "5000", "--rate-limit-per-sec", "5000"],
    )
    .await
}

/// The messages around one far back come in one answer, in their current state, with
/// whether there are more on each side.
#[tokio::test]
async fn a_room_opens_around_a_message_far_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let _server = start(addr, dir.path()).await;
    let mut ada = Client::in_room(addr, "ada", "general").await;
    for i in 1..=300 {
        ada.send_json(&ClientMsg::Send {
            room: "general".into(),
            body: format!("message {i}"),
            client_id: fresh_client_id(),
            reply_to: None,
            files: Vec::new(),
        })
        .await;
    }
    ada.recv_until(|m| matches!(m, ServerMsg::Message(m) if m.seq == 300))
        .await;
    ada.send_json(&ClientMsg::FetchAround {
        room: "general".into(),
        seq: 120,
    })
    .await;
    match ada
        .recv_until(|m| matches!(m, ServerMsg::Around { .. }))
        .await
    {
        ServerMsg::Around {
            room,
            seq,
            messages,
            older,
            newer,
        } => {
            assert_eq!(
                (room.as_str(), seq, older, newer),
                ("general", 120, true, true)
            );
            let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (70..=170).collect::<Vec<_>>());
            assert_eq!(messages[50].body, "message 120");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Someone not in the room is told to join it first.
    let mut bob = Client::named(addr, "bob").await;
    bob.send_json(&ClientMsg::FetchAround {
        room: "general".into(),
        seq: 120,
    })
    .await;
    bob.expect_error(ErrorCode::NotInRoom).await;
}

async fn bodies(c: &mut Client, query: &str) -> Vec<String> {
    let (hits, _) = c.search(query, None).await.expect("results");
    for hit in &hits {
        let body = &hit.message.body;
        for [a, b] in &hit.marks {
            let marked = body
                .get(*a as usize..*b as usize)
                .expect("a range of the body");
            assert!(!marked.trim().is_empty(), "{marked:?}");
        }
    }
    hits.into_iter().map(|h| h.message.body).collect()
}

fn say(room: &str, body: &str) -> ClientMsg {
    ClientMsg::Send {
        room: room.into(),
        body: body.into(),
        client_id: fresh_client_id(),
        reply_to: None,
        files: Vec::new(),
    }
}

/// Nobody finds a message of a room they may not see: not a private room they are not
/// in, not others' direct conversations, and a guest nothing but public rooms. What they
/// find is as it is now: an edit found by its new text only, a deletion never, from the
/// moment it is acknowledged.
#[tokio::test]
async fn search_finds_only_what_each_person_may_see_as_it_is_now() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let _server = start(addr, dir.path()).await;
    let ada_cookie = sign_up(addr, "ada").await;
    let mut ada = Client::signed_in(addr, &ada_cookie).await;
    let mut bob = Client::signed_in(addr, &sign_up(addr, "bob").await).await;
    let mut cy = Client::signed_in(addr, &sign_up(addr, "cy").await).await;
    let mut guest = Client::named(addr, "Visitor").await;

    let plans = ada.create_private("plans").await;
    ada.join(&plans).await;
    ada.acked(say(&plans, "needle: the secret plan")).await;
    ada.send_json(&ClientMsg::OpenDirect { user: "cy".into() })
        .await;
    let dm = match ada
        .recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
        .await
    {
        ServerMsg::Joined { room, .. } => room,
        other => unreachable!("{other:?}"),
    };
    ada.acked(say(&dm, "a needle for cy only")).await;
    ada.join("general").await;
    ada.acked(say("general", "a needle for everyone")).await;

    assert_eq!(
        bodies(&mut ada, "needle").await,
        [
            "a needle for everyone",
            "a needle for cy only",
            "needle: the secret plan"
        ]
    );
    assert_eq!(bodies(&mut bob, "needle").await, ["a needle for everyone"]);
    assert_eq!(
        bodies(&mut cy, "needle").await,
        ["a needle for everyone", "a needle for cy only"]
    );
    assert_eq!(
        bodies(&mut guest, "needle").await,
        ["a needle for everyone"]
    );
    assert_eq!(bodies(&mut guest, "secret").await, Vec::<String>::new());
    assert_eq!(
        bob.search("needle in:plans", None).await.err(),
        Some(ErrorCode::InvalidQuery),
        "a room bob may not see is no room"
    );
    assert_eq!(
        bodies(&mut ada, "secret in:plans from:ada").await,
        ["needle: the secret plan"]
    );

    // A hit is the message as pages show it: with its files.
    let upload = http_request(
        addr,
        "POST",
        "/api/files?room=general&name=notes.txt",
        &[("Cookie", &ada_cookie)],
        Some("plain notes"),
    )
    .await;
    assert_eq!(upload.status, 201, "{upload:?}");
    let file: Attachment = upload.json();
    ada.acked(ClientMsg::Send {
        room: "general".into(),
        body: "the attached notes".into(),
        client_id: fresh_client_id(),
        reply_to: None,
        files: vec![file.id.clone()],
    })
    .await;
    let (hits, _) = bob.search("attached", None).await.expect("results");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message.files, std::slice::from_ref(&file));
    ada.send_json(&ClientMsg::FetchAround {
        room: "general".into(),
        seq: hits[0].message.seq,
    })
    .await;
    match ada
        .recv_until(|m| matches!(m, ServerMsg::Around { .. }))
        .await
    {
        ServerMsg::Around { messages, .. } => {
            let shared = messages.iter().find(|m| !m.files.is_empty());
            assert_eq!(shared.map(|m| m.files.clone()), Some(vec![file]));
        }
        other => unreachable!("{other:?}"),
    }

    // Edits and deletions count from their ack on.
    ada.acked(ClientMsg::Edit {
        room: "general".into(),
        seq: 1,
        body: "a haystack for everyone".into(),
        client_id: fresh_client_id(),
    })
    .await;
    assert_eq!(bodies(&mut bob, "needle").await, Vec::<String>::new());
    assert_eq!(
        bodies(&mut bob, "haystack").await,
        ["a haystack for everyone"]
    );
    ada.acked(ClientMsg::Delete {
        room: dm.clone(),
        seq: 1,
        client_id: fresh_client_id(),
    })
    .await;
    assert_eq!(bodies(&mut cy, "needle").await, Vec::<String>::new());
    assert_eq!(
        bodies(&mut ada, "needle").await,
        ["needle: the secret plan"]
    );
}

/// A query that cannot be run is an `invalid_query` error saying why; results come a
/// page at a time, newest first.
#[tokio::test]
async fn bad_queries_are_refused_and_results_come_in_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let _server = start(addr, dir.path()).await;
    let mut ada = Client::in_room(addr, "ada", "general").await;
    for text in [
        "",
        "in:general",
        "x from:",
        "x on:2026-02-30",
        "NEAR(\"a\"",
        ")))",
    ] {
        ada.send_json(&ClientMsg::Search {
            query: text.into(),
            before: None,
        })
        .await;
        match ada.recv().await {
            ServerMsg::Error { code, message, .. } => {
                if text == "NEAR(\"a\"" {
                    panic!("{text:?} is a query, got {code}: {message}");
                }
                assert_eq!(code, ErrorCode::InvalidQuery, "{text:?}");
                assert!(!message.is_empty());
            }
            ServerMsg::SearchResults { hits, .. } => {
                assert_eq!(text, "NEAR(\"a\"", "only the query of words runs");
                assert!(hits.is_empty());
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    for i in 1..=25 {
        ada.send_json(&say("general", &format!("page {i}"))).await;
    }
    ada.recv_until(|m| matches!(m, ServerMsg::Message(m) if m.seq == 25))
        .await;
    let (first, more) = ada.search("page", None).await.expect("results");
    assert!(more);
    assert_eq!(first.len(), 20);
    assert_eq!(first[0].message.body, "page 25");
    assert_eq!(first[0].marks, [[0, 4]]);
    let last = first.last().map(|h| h.message.id);
    let (rest, more) = ada.search("page", last).await.expect("results");
    assert!(!more);
    let seqs: Vec<u64> = rest.iter().map(|h| h.message.seq).collect();
    assert_eq!(seqs, [5, 4, 3, 2, 1]);
}
