//! Chat behaviour seen through real sockets: messages, rooms, presence, history, names
//! and typing.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Client, start};
use confab_shared::{ClientMsg, ErrorCode, Person, PresenceEvent, ServerMsg};

/// A guest as others see them (the test server lets guests in).
fn guest(name: &str) -> Person {
    Person {
        user: format!("~{}", name.to_lowercase()),
        name: name.into(),
        guest: true,
    }
}

/// A guest's arrival or departure, and how many people the room holds after it (a guest
/// belongs to a room only while there).
fn presence(room: &str, name: &str, event: PresenceEvent, member_count: usize) -> ServerMsg {
    ServerMsg::Presence {
        room: room.into(),
        who: guest(name),
        event,
        member_count,
    }
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds fit i64")
}

#[tokio::test]
async fn two_users_exchange_messages() {
    let server = start().await;
    let mut ada = Client::in_room(server.addr, "ada", "general").await;
    let mut bob = Client::in_room(server.addr, "bob", "general").await;

    let before = now_ms();
    let sent = ada.say("general", "  hello bob \n").await;
    assert_eq!(sent.room, "general");
    assert_eq!((sent.from.as_str(), sent.name.as_str()), ("~ada", "ada"));
    assert_eq!(sent.body, "hello bob", "surrounding whitespace is trimmed");
    assert!(sent.id > 0);
    assert!(
        sent.ts > 0 && (before - 1000..=now_ms() + 1000).contains(&sent.ts),
        "ts {} is the server's clock in ms",
        sent.ts
    );
    assert_eq!(
        bob.next_message().await,
        sent,
        "both ends get the same server copy"
    );

    let reply = bob.say("general", "hi ada").await;
    assert_eq!(reply.from, "~bob");
    assert!(reply.id > sent.id, "ids increase");
    assert_eq!(ada.next_message().await, reply);
}

#[tokio::test]
async fn rooms_are_isolated() {
    let server = start().await;
    let mut ada = Client::in_room(server.addr, "ada", "general").await;
    let mut bob = Client::in_room(server.addr, "bob", "general").await;
    ada.create_room("ops").await;
    bob.expect_room_list_with("ops").await;
    ada.join("ops").await;

    ada.say("ops", "secret plans").await;
    let public = ada.say("general", "public").await;
    // Bob's very next frame is the `general` message: nothing from #ops came before it.
    assert_eq!(bob.recv().await, ServerMsg::Message(public));

    // Each refusal names the room it is about.
    bob.send_to("ops", "let me in").await;
    let about = bob.expect_error(ErrorCode::NotInRoom).await;
    assert_eq!(about.as_deref(), Some("ops"));
    bob.send_to("nowhere", "hello?").await;
    let about = bob.expect_error(ErrorCode::UnknownRoom).await;
    assert_eq!(about.as_deref(), Some("nowhere"));
    bob.send_json(&ClientMsg::Join {
        room: "nowhere".into(),
        after: None,
    })
    .await;
    let about = bob.expect_error(ErrorCode::UnknownRoom).await;
    assert_eq!(about.as_deref(), Some("nowhere"));

    // The refused message was not stored: #ops holds only Ada's.
    let (members, history) = bob.join("ops").await;
    assert_eq!(members, ["~ada", "~bob"]);
    let bodies: Vec<_> = history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["secret plans"]);
}

#[tokio::test]
async fn presence_on_join_leave_and_disconnect() {
    let server = start().await;
    let mut ada = Client::in_room(server.addr, "ada", "general").await;
    let mut bob = Client::named(server.addr, "bob").await;

    let (members, _) = bob.join("general").await;
    assert_eq!(members, ["~ada", "~bob"]);
    assert_eq!(
        ada.recv().await,
        presence("general", "bob", PresenceEvent::Joined, 2)
    );

    bob.leave("general").await;
    assert_eq!(
        ada.recv().await,
        presence("general", "bob", PresenceEvent::Left, 1)
    );

    bob.join("general").await;
    assert_eq!(
        ada.recv().await,
        presence("general", "bob", PresenceEvent::Joined, 2)
    );
    // Vanishing without a close handshake counts as leaving too.
    drop(bob);
    assert_eq!(
        ada.recv().await,
        presence("general", "bob", PresenceEvent::Left, 1)
    );
}

#[tokio::test]
async fn joining_delivers_earlier_messages_as_history() {
    let server = start().await;
    let mut ada = Client::in_room(server.addr, "ada", "general").await;
    let mut sent = Vec::new();
    for body in ["first", "second", "third"] {
        sent.push(ada.say("general", body).await);
    }

    let mut bob = Client::named(server.addr, "bob").await;
    let (members, history) = bob.join("general").await;
    assert_eq!(members, ["~ada", "~bob"]);
    assert_eq!(history, sent, "the same messages, oldest first");
}

#[tokio::test]
async fn names_are_unique_case_insensitively_until_freed() {
    let server = start().await;
    let mut ada = Client::in_room(server.addr, "Ada", "general").await;
    let mut watcher = Client::in_room(server.addr, "carol", "general").await;
    let mut late = Client::connect(server.addr).await;

    for name in ["ada", "  ADA "] {
        match late.try_hello(name).await {
            ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::NameTaken, "{name:?}"),
            other => panic!("expected name_taken for {name:?}, got {other:?}"),
        }
    }

    // A proper close handshake this time (the presence test covers a dropped socket).
    ada.ws.close(None).await.expect("send a close frame");
    // Presence "left" is sent when the server forgets the session, name included.
    watcher
        .recv_until(|m| *m == presence("general", "Ada", PresenceEvent::Left, 1))
        .await;
    assert_eq!(late.hello("ada").await, "ada");
}

#[tokio::test]
async fn typing_reaches_the_others_but_not_the_typist() {
    let server = start().await;
    let mut ada = Client::in_room(server.addr, "ada", "general").await;
    let mut bob = Client::in_room(server.addr, "bob", "general").await;
    assert_eq!(
        ada.recv().await,
        presence("general", "bob", PresenceEvent::Joined, 2)
    );

    ada.send_json(&ClientMsg::Typing {
        room: "general".into(),
    })
    .await;
    assert_eq!(
        bob.recv().await,
        ServerMsg::Typing {
            room: "general".into(),
            who: guest("ada"),
        }
    );
    // Had the typing event been echoed, it would reach Ada before the ack of her message.
    ada.send_to("general", "done typing").await;
    match ada.recv().await {
        ServerMsg::Ack { .. } => {}
        other => panic!("expected the ack of Ada's message first, got {other:?}"),
    }
    assert_eq!(ada.next_message().await.body, "done typing");

    ada.send_json(&ClientMsg::Typing { room: "ops".into() })
        .await;
    ada.expect_error(ErrorCode::UnknownRoom).await;
}
