//! Bad input through real sockets: malformed or invalid requests get an error frame and
//! the connection lives on; frames the server cannot take end the connection with the
//! matching close code, and nobody else notices.

mod common;

use common::{Client, start, start_with};
use confab_shared::{
    ClientMsg, ErrorCode, PROTOCOL_VERSION, PresenceEvent, ServerMsg, close, limits,
};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::{
    Bytes, Message,
    protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    },
};

fn hello(protocol: u32, name: &str) -> String {
    ClientMsg::Hello {
        protocol,
        name: Some(name.into()),
    }
    .to_json()
}

fn send(room: &str, body: &str) -> String {
    ClientMsg::Send {
        room: room.into(),
        body: body.into(),
        client_id: common::fresh_client_id(),
        reply_to: None,
        files: Vec::new(),
    }
    .to_json()
}

#[tokio::test]
async fn malformed_json_gets_bad_json_and_the_connection_still_works() {
    let server = start().await;
    let mut c = Client::connect(server.addr).await;
    c.send_text("{\"type\":\"hello\",").await;
    c.expect_error(ErrorCode::BadJson).await;

    c.hello("ada").await;
    c.join("general").await;
    assert_eq!(c.say("general", "still here").await.body, "still here");
}

#[tokio::test]
async fn every_kind_of_bad_request_gets_its_error_code() {
    let server = start().await;
    let mut c = Client::connect(server.addr).await;
    let too_long_name = "n".repeat(limits::MAX_NAME_CHARS + 1);
    let before_hello = [
        ("not json".to_owned(), ErrorCode::BadJson),
        (r#"{"type":"dance"}"#.to_owned(), ErrorCode::UnknownType),
        (r#"{"kind":"hello"}"#.to_owned(), ErrorCode::BadMessage),
        (r#"{"type":"join"}"#.to_owned(), ErrorCode::BadMessage),
        (
            r#"{"type":"join","room":5}"#.to_owned(),
            ErrorCode::BadMessage,
        ),
        ("[1,2]".to_owned(), ErrorCode::BadMessage),
        (
            r#"{"type":"join","room":"general"}"#.to_owned(),
            ErrorCode::HelloRequired,
        ),
        (send("general", "hi"), ErrorCode::HelloRequired),
        (
            hello(PROTOCOL_VERSION + 1, "ada"),
            ErrorCode::UnsupportedProtocol,
        ),
        (hello(PROTOCOL_VERSION, "   "), ErrorCode::InvalidName),
        (
            hello(PROTOCOL_VERSION, &too_long_name),
            ErrorCode::InvalidName,
        ),
        (hello(PROTOCOL_VERSION, "a\u{7}b"), ErrorCode::InvalidName),
    ];
    for (frame, code) in before_hello {
        c.send_text(&frame).await;
        c.expect_error(code).await;
    }

    c.hello("ada").await;
    c.join("general").await;
    let too_long_body = "b".repeat(limits::MAX_BODY_CHARS + 1);
    let after_hello = [
        (hello(PROTOCOL_VERSION, "bob"), ErrorCode::AlreadyIdentified),
        (
            r#"{"type":"join","room":"No Spaces"}"#.to_owned(),
            ErrorCode::InvalidRoom,
        ),
        (
            r#"{"type":"create_room","room":"UPPER"}"#.to_owned(),
            ErrorCode::InvalidRoom,
        ),
        (send("", "hi"), ErrorCode::InvalidRoom),
        (send("general", " \n\t "), ErrorCode::InvalidBody),
        (send("general", &too_long_body), ErrorCode::InvalidBody),
        (
            r#"{"type":"create_room","room":"general"}"#.to_owned(),
            ErrorCode::RoomExists,
        ),
        (
            r#"{"type":"leave","room":"nowhere"}"#.to_owned(),
            ErrorCode::UnknownRoom,
        ),
    ];
    for (frame, code) in after_hello {
        c.send_text(&frame).await;
        c.expect_error(code).await;
    }

    // Every refusal left the session as it was: still named, still in #general.
    assert_eq!(c.say("general", "still here").await.from, "~ada");
}

#[tokio::test]
async fn the_configured_room_cap_is_enforced() {
    let server = start_with(|config| config.max_rooms = 2).await;
    let mut ada = Client::named(server.addr, "ada").await;
    ada.create_room("second").await;
    ada.send_json(&ClientMsg::CreateRoom {
        room: "third".into(),
        private: false,
    })
    .await;
    // The room list's own update about "second" may come first.
    match ada
        .recv_until(|m| matches!(m, ServerMsg::Error { .. }))
        .await
    {
        ServerMsg::Error { code, room, .. } => {
            assert_eq!(code, ErrorCode::TooManyRooms);
            assert_eq!(room.as_deref(), Some("third"));
        }
        _ => unreachable!("filtered above"),
    }
}

#[tokio::test]
async fn a_frame_at_the_size_limit_is_read_one_byte_more_closes_with_1009() {
    let server = start().await;
    let mut ada = Client::in_room(server.addr, "ada", "general").await;
    let mut bob = Client::in_room(server.addr, "bob", "general").await;
    let mut big = Client::in_room(server.addr, "big", "general").await;

    // Exactly at the limit: read and answered (it is not JSON), the socket stays open.
    big.send_text(&"x".repeat(limits::MAX_FRAME_BYTES)).await;
    big.expect_error(ErrorCode::BadJson).await;

    // The server may reset the socket while the rest of this frame is still being
    // written, so the send itself is allowed to fail; the close frame arrives first.
    let _ = big
        .ws
        .send(Message::text("x".repeat(limits::MAX_FRAME_BYTES + 1)))
        .await;
    assert_eq!(big.expect_close().await, close::MESSAGE_TOO_BIG);

    ada.recv_until(|m| {
        matches!(m, ServerMsg::Presence { who, event: PresenceEvent::Left, .. } if who.name == "big")
    })
    .await;
    let msg = ada.say("general", "still chatting").await;
    assert_eq!(bob.next_message().await, msg);
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003() {
    let server = start().await;
    let mut ada = Client::in_room(server.addr, "ada", "general").await;
    let mut bin = Client::in_room(server.addr, "bin", "general").await;

    bin.ws
        .send(Message::binary(Bytes::from_static(
            b"{\"type\":\"list_rooms\"}",
        )))
        .await
        .expect("send a binary frame");
    assert_eq!(bin.expect_close().await, close::UNSUPPORTED_DATA);

    ada.recv_until(|m| {
        matches!(m, ServerMsg::Presence { who, event: PresenceEvent::Left, .. } if who.name == "bin")
    })
    .await;
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let server = start().await;
    let mut c = Client::named(server.addr, "ada").await;
    let frame = Frame::message(
        Bytes::from_static(b"{\"type\":\"list_rooms\xff\"}"),
        OpCode::Data(Data::Text),
        true,
    );
    c.ws.send(Message::Frame(frame))
        .await
        .expect("send a raw text frame");
    assert_eq!(c.expect_close().await, close::INVALID_PAYLOAD);
}

#[tokio::test]
async fn replies_keep_the_order_of_requests_good_or_bad() {
    let server = start().await;
    let mut c = Client::connect(server.addr).await;
    // Sent back to back without waiting: a valid hello, then garbage, then a join.
    c.send_text(&hello(PROTOCOL_VERSION, "ada")).await;
    c.send_text("not json").await;
    c.send_text(r#"{"type":"join","room":"general"}"#).await;
    assert!(matches!(c.recv().await, ServerMsg::Welcome { .. }));
    assert!(matches!(
        c.recv().await,
        ServerMsg::Error {
            code: ErrorCode::BadJson,
            ..
        }
    ));
    assert!(matches!(c.recv().await, ServerMsg::Joined { .. }));
}
