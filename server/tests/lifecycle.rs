//! Connection lifetimes: graceful shutdown, the idle timeout and the heartbeat that
//! keeps healthy connections alive.

mod common;

use std::time::{Duration, Instant};

use common::{Client, TIMEOUT, start, start_with};
use confab_shared::{ClientMsg, ErrorCode, close};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001_and_serve_returns() {
    let server = start().await;
    let addr = server.addr;
    let mut ada = Client::in_room(addr, "ada", "general").await;
    let mut anonymous = Client::connect(addr).await;
    // Only the hub answers this, so the hub knows the anonymous socket.
    anonymous.send_json(&ClientMsg::ListRooms).await;
    anonymous.expect_error(ErrorCode::HelloRequired).await;

    let serving = server.shutdown();
    assert_eq!(ada.expect_close().await, close::GOING_AWAY);
    assert_eq!(anonymous.expect_close().await, close::GOING_AWAY);
    timeout(Duration::from_secs(4), serving)
        .await
        .expect("serve returns once the sockets are closed")
        .expect("server task did not panic")
        .expect("serve returns Ok");
}

/// Reads what the server writes until it closes the connection, or panics after `limit`.
async fn read_until_eof(tcp: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    timeout(limit, tcp.read_to_end(&mut out))
        .await
        .expect("server closes the silent connection")
        .expect("read until EOF");
    out
}

/// Splits unmasked server frames into (opcode, payload).
fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        assert_eq!(bytes[1] & 0x80, 0, "server frames are not masked");
        let (len, header) = match bytes[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => panic!("unexpectedly large frame from the server"),
            n => (usize::from(n), 2),
        };
        out.push((opcode, bytes[header..header + len].to_vec()));
        bytes = &bytes[header + len..];
    }
    assert!(bytes.is_empty(), "trailing partial frame {bytes:?}");
    out
}

#[tokio::test]
async fn a_silent_peer_is_dropped_after_the_idle_timeout() {
    let server = start_with(|config| {
        config.ping_interval_secs = 1;
        config.idle_timeout_secs = 1;
    })
    .await;

    // A handshake by hand, then silence: not even pongs.
    let mut tcp = TcpStream::connect(server.addr).await.expect("TCP connect");
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    tcp.write_all(handshake.as_bytes())
        .await
        .expect("write handshake");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = timeout(TIMEOUT, tcp.read_u8())
            .await
            .expect("handshake response in time")
            .expect("read handshake response");
        head.push(byte);
    }
    let head = String::from_utf8(head).expect("UTF-8 response head");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let upgraded = Instant::now();

    let rest = read_until_eof(&mut tcp, Duration::from_secs(1) + TIMEOUT).await;
    let elapsed = upgraded.elapsed();
    assert!(
        elapsed >= Duration::from_millis(800),
        "dropped after {elapsed:?}, before the idle timeout"
    );
    let close_codes: Vec<u16> = frames(&rest)
        .into_iter()
        .filter(|(opcode, _)| *opcode == 0x8)
        .map(|(_, payload)| u16::from_be_bytes([payload[0], payload[1]]))
        .collect();
    assert_eq!(
        close_codes,
        [close::IDLE_TIMEOUT],
        "told why before the drop"
    );
}

#[tokio::test]
async fn a_client_that_answers_pings_outlives_the_idle_timeout() {
    let server = start_with(|config| {
        config.ping_interval_secs = 1;
        config.idle_timeout_secs = 2;
    })
    .await;
    let mut listener = Client::in_room(server.addr, "listener", "general").await;

    // The listener only reads (its client library answers the server's pings) while
    // the idle timeout passes; this delay is what is under test. Then someone new
    // talks to it.
    let addr = server.addr;
    let talk = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let mut talker = Client::in_room(addr, "talker", "general").await;
        talker.say("general", "still there?").await
    });
    let heard = listener.next_message().await;
    let said = talk.await.expect("talker task");
    assert_eq!(heard, said);
}
