//! WebSocket protocol abuse over a raw TCP socket: the handshake and every frame are
//! written byte by byte, so the tests can send what no WebSocket library would (RFC 6455
//! §5). Each case checks the close frame the server answers with, that the server then
//! ends the connection, and that the people chatting on the same server notice nothing.
//!
//! Every connection first says hello in a well-formed frame built by the same helper and
//! gets its welcome: the frame builder is right, and the close that follows is caused by
//! the broken frame alone.

mod common;

use std::net::SocketAddr;

use common::{Client, TIMEOUT};
use confab_shared::{ClientMsg, ErrorCode, PROTOCOL_VERSION, ServerMsg, close, limits};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// One frame as a client puts it on the wire (RFC 6455 §5.2), with every field
/// settable, including the broken ones.
#[derive(Debug, Clone)]
struct RawFrame {
    fin: bool,
    /// RSV1..3 as the low three bits (RSV1 = 0b100).
    rsv: u8,
    opcode: u8,
    masked: bool,
    payload: Vec<u8>,
    /// Length written in the header, when it should differ from the payload's.
    declared_len: Option<u64>,
}

impl RawFrame {
    /// A final, masked frame: what a well-behaved client sends.
    fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Self {
        RawFrame {
            fin: true,
            rsv: 0,
            opcode,
            masked: true,
            payload: payload.into(),
            declared_len: None,
        }
    }

    fn text(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(TEXT, payload)
    }

    /// A close frame with `code` and no reason.
    fn close(code: u16) -> Self {
        Self::new(CLOSE, code.to_be_bytes())
    }

    fn not_final(mut self) -> Self {
        self.fin = false;
        self
    }

    fn rsv(mut self, bits: u8) -> Self {
        self.rsv = bits;
        self
    }

    fn unmasked(mut self) -> Self {
        self.masked = false;
        self
    }

    /// Claims a payload of `len` bytes in the header, whatever follows it.
    fn declaring(mut self, len: u64) -> Self {
        self.declared_len = Some(len);
        self
    }

    fn encode(&self) -> Vec<u8> {
        const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![(u8::from(self.fin) << 7) | ((self.rsv & 0b111) << 4) | self.opcode];
        let mask_bit = if self.masked { 0x80 } else { 0 };
        let len = self.declared_len.unwrap_or(self.payload.len() as u64);
        match len {
            0..=125 => out.push(mask_bit | len as u8),
            126..=0xFFFF => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        if self.masked {
            out.extend_from_slice(&KEY);
            out.extend(
                self.payload
                    .iter()
                    .zip(KEY.iter().cycle())
                    .map(|(b, k)| b ^ k),
            );
        } else {
            out.extend_from_slice(&self.payload);
        }
        out
    }
}

/// A WebSocket client made of a TCP socket and the helpers above.
struct RawWs {
    tcp: TcpStream,
    /// Bytes read but not parsed yet.
    buf: Vec<u8>,
}

impl RawWs {
    /// Connects and performs the opening handshake by hand (RFC 6455 §4.1).
    async fn connect(addr: SocketAddr) -> RawWs {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let mut tcp = TcpStream::connect(addr).await.expect("TCP connect");
        tcp.write_all(request.as_bytes())
            .await
            .expect("write the handshake");
        let mut ws = RawWs {
            tcp,
            buf: Vec::new(),
        };
        let head_end = loop {
            if let Some(i) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(ws.fill().await, "the server closed during the handshake");
        };
        let head = String::from_utf8(ws.buf.drain(..head_end).collect()).expect("ASCII head");
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "expected 101 Switching Protocols, got {head:?}"
        );
        let accept = format!(
            "sec-websocket-accept: {}",
            derive_accept_key(key.as_bytes()).to_ascii_lowercase()
        );
        assert!(
            head.to_ascii_lowercase().contains(&accept),
            "wrong or missing Sec-WebSocket-Accept in {head:?}"
        );
        ws
    }

    /// Connects and says hello as `name` in a well-formed frame, expecting a welcome.
    async fn named(addr: SocketAddr, name: &str) -> RawWs {
        let mut ws = RawWs::connect(addr).await;
        let hello = ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: Some(name.to_owned()),
        };
        ws.send(&[RawFrame::text(hello.to_json())]).await;
        let reply = ws.recv().await;
        assert!(
            matches!(&reply, ServerMsg::Welcome { you, .. } if you.name == name),
            "expected a welcome for {name}, got {reply:?}"
        );
        ws
    }

    async fn send(&mut self, frames: &[RawFrame]) {
        let bytes: Vec<u8> = frames.iter().flat_map(RawFrame::encode).collect();
        timeout(TIMEOUT, self.tcp.write_all(&bytes))
            .await
            .expect("write within the timeout")
            .expect("write the frames");
    }

    /// Reads more bytes; `false` at the end of the stream (a reset counts as an end).
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match timeout(TIMEOUT, self.tcp.read(&mut chunk)).await {
            Err(_) => panic!("the server sent nothing within {TIMEOUT:?}"),
            Ok(Ok(0)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Ok(Err(e)) => panic!("read failed: {e}"),
        }
    }

    /// The next whole frame from the server as (opcode, payload); `None` if the stream
    /// ends first. Server frames must be final and unmasked (RFC 6455 §5.1).
    async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((header_len, len)) = self.parse_header()
                && self.buf.len() >= header_len + len
            {
                let frame: Vec<u8> = self.buf.drain(..header_len + len).collect();
                assert_eq!(frame[0] & 0xF0, 0x80, "FIN set, RSV clear: {:#x}", frame[0]);
                return Some((frame[0] & 0x0F, frame[header_len..].to_vec()));
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// (header length, payload length) once the whole header is buffered.
    fn parse_header(&self) -> Option<(usize, usize)> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "the server must not mask its frames");
        match b[1] & 0x7F {
            126 => (b.len() >= 4).then(|| (4, usize::from(u16::from_be_bytes([b[2], b[3]])))),
            127 => (b.len() >= 10).then(|| {
                let len = u64::from_be_bytes(b[2..10].try_into().expect("8 bytes"));
                (10, usize::try_from(len).expect("length fits"))
            }),
            n => Some((2, usize::from(n))),
        }
    }

    /// The next protocol message, skipping pings.
    async fn recv(&mut self) -> ServerMsg {
        loop {
            match self.next_frame().await {
                Some((TEXT, payload)) => {
                    return serde_json::from_slice(&payload).expect("the server's JSON");
                }
                Some((PING | PONG, _)) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Reads up to the server's close frame and returns its status code, answers it as
    /// the closing handshake asks (the server may already be gone: that is fine), then
    /// checks that the server ends the TCP connection.
    async fn expect_close(&mut self) -> u16 {
        let code = loop {
            match self.next_frame().await {
                Some((CLOSE, payload)) => {
                    assert!(payload.len() >= 2, "close frame without a code");
                    break u16::from_be_bytes([payload[0], payload[1]]);
                }
                Some((TEXT | PING | PONG, _)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        let reply = RawFrame::close(code).encode();
        let _ = timeout(TIMEOUT, self.tcp.write_all(&reply)).await;
        // Nothing may follow a close frame (RFC 6455 §5.5.1); then the socket ends.
        assert!(
            !self.fill().await,
            "data after the close frame: {:?}",
            self.buf
        );
        code
    }
}

/// Sends each case's frames on a fresh connection, after a well-formed hello, and
/// expects the server to close that connection with `code`. Meanwhile two people chat
/// on the same server: afterwards they still can, and a newcomer can join them.
async fn each_closes_with(cases: Vec<(&str, Vec<RawFrame>)>, code: u16) {
    let server = common::start().await;
    let addr = server.addr;
    let mut ada = Client::in_room(addr, "ada", "general").await;
    let mut bob = Client::in_room(addr, "bob", "general").await;

    for (i, (case, frames)) in cases.into_iter().enumerate() {
        let mut ws = RawWs::named(addr, &format!("raw{i}")).await;
        ws.send(&frames).await;
        assert_eq!(ws.expect_close().await, code, "case {case:?}");
    }

    let msg = ada.say("general", "still chatting").await;
    assert_eq!(bob.next_message().await, msg);
    let mut carol = Client::in_room(addr, "carol", "general").await;
    let msg = carol.say("general", "hi all").await;
    assert_eq!(ada.next_message().await, msg);
    assert_eq!(bob.next_message().await, msg);
}

fn list_rooms() -> Vec<u8> {
    ClientMsg::ListRooms.to_json().into_bytes()
}

#[tokio::test]
async fn unmasked_client_frames_close_with_1002() {
    each_closes_with(
        vec![
            ("text", vec![RawFrame::text(list_rooms()).unmasked()]),
            ("ping", vec![RawFrame::new(PING, "hi").unmasked()]),
            ("empty text", vec![RawFrame::text("").unmasked()]),
        ],
        close::PROTOCOL_ERROR,
    )
    .await;
}

#[tokio::test]
async fn reserved_bits_close_with_1002() {
    let text = || RawFrame::text(list_rooms());
    each_closes_with(
        vec![
            (
                "RSV1 (no compression is negotiated)",
                vec![text().rsv(0b100)],
            ),
            ("RSV2", vec![text().rsv(0b010)]),
            ("RSV3", vec![text().rsv(0b001)]),
            ("RSV1 on a ping", vec![RawFrame::new(PING, "").rsv(0b100)]),
        ],
        close::PROTOCOL_ERROR,
    )
    .await;
}

#[tokio::test]
async fn fragmented_control_frames_close_with_1002() {
    each_closes_with(
        vec![
            ("ping", vec![RawFrame::new(PING, "a").not_final()]),
            ("pong", vec![RawFrame::new(PONG, "a").not_final()]),
            ("close", vec![RawFrame::close(1000).not_final()]),
            (
                "ping inside a fragmented text",
                vec![
                    RawFrame::text("{\"type\":").not_final(),
                    RawFrame::new(PING, "a").not_final(),
                ],
            ),
        ],
        close::PROTOCOL_ERROR,
    )
    .await;
}

#[tokio::test]
async fn control_frames_over_125_bytes_close_with_1002() {
    let mut long_close = 1000u16.to_be_bytes().to_vec();
    long_close.extend([b'r'; 124]);
    each_closes_with(
        vec![
            ("ping of 126", vec![RawFrame::new(PING, [b'p'; 126])]),
            ("pong of 126", vec![RawFrame::new(PONG, [b'p'; 126])]),
            ("close of 126", vec![RawFrame::new(CLOSE, long_close)]),
            (
                "ping of 64 KiB",
                vec![RawFrame::new(PING, vec![b'p'; 65_536])],
            ),
        ],
        close::PROTOCOL_ERROR,
    )
    .await;
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    each_closes_with(
        vec![
            (
                "stray byte",
                vec![RawFrame::text(&b"{\"type\":\"list_rooms\xff\"}"[..])],
            ),
            ("overlong '/'", vec![RawFrame::text(&b"\xc0\xaf"[..])]),
            (
                "UTF-16 surrogate",
                vec![RawFrame::text(&b"\xed\xa0\x80"[..])],
            ),
            (
                "truncated sequence",
                vec![RawFrame::text(&b"ok \xe2\x82"[..])],
            ),
            (
                "bad byte in a continuation",
                vec![
                    RawFrame::text("{\"type\":").not_final(),
                    RawFrame::new(CONTINUATION, &b"\"list_rooms\xfe\"}"[..]),
                ],
            ),
            (
                "sequence cut off by the last fragment",
                vec![
                    RawFrame::text("caf").not_final(),
                    RawFrame::new(CONTINUATION, &b"\xc3"[..]),
                ],
            ),
            ("close reason", {
                let mut payload = 1000u16.to_be_bytes().to_vec();
                payload.extend_from_slice(b"bye \xff");
                vec![RawFrame::new(CLOSE, payload)]
            }),
        ],
        close::INVALID_PAYLOAD,
    )
    .await;
}

#[tokio::test]
async fn continuation_frames_out_of_place_close_with_1002() {
    each_closes_with(
        vec![
            (
                "final continuation without a start",
                vec![RawFrame::new(CONTINUATION, list_rooms())],
            ),
            (
                "continuation without a start",
                vec![RawFrame::new(CONTINUATION, "{").not_final()],
            ),
            (
                "new text before the fragmented one ends",
                vec![
                    RawFrame::text("{\"type\":").not_final(),
                    RawFrame::text(list_rooms()),
                ],
            ),
            (
                "continuation after a finished message",
                vec![
                    RawFrame::text(list_rooms()),
                    RawFrame::new(CONTINUATION, "}"),
                ],
            ),
        ],
        close::PROTOCOL_ERROR,
    )
    .await;
}

/// RFC 6455 §7.4: 1005, 1006 and 1015 must never be sent, 0–999 are not used, 1016–2999
/// are reserved for the RFC's extensions and nothing exists above 4999.
#[tokio::test]
async fn close_frames_with_invalid_codes_are_answered_with_1002() {
    let codes = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX];
    let mut cases: Vec<(&str, Vec<RawFrame>)> = codes
        .iter()
        .map(|&code| ("invalid code", vec![RawFrame::close(code)]))
        .collect();
    cases.push(("one-byte payload", vec![RawFrame::new(CLOSE, [0x03])]));
    each_closes_with(cases, close::PROTOCOL_ERROR).await;
}

/// The counterpart of the test above: a close with a valid code is echoed (RFC 6455
/// §5.5.1), so the 1002s are about the codes, not about closing.
#[tokio::test]
async fn close_frames_with_valid_codes_are_echoed() {
    for code in [1000, 1001, 1003, 1011, 3000, 4999] {
        each_closes_with(vec![("valid code", vec![RawFrame::close(code)])], code).await;
    }
}

#[tokio::test]
async fn unknown_opcodes_close_with_1002() {
    let cases = (0x3..=0x7)
        .chain(0xB..=0xF)
        .map(|opcode| ("reserved opcode", vec![RawFrame::new(opcode, list_rooms())]))
        .collect();
    each_closes_with(cases, close::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003() {
    each_closes_with(
        vec![("binary", vec![RawFrame::new(BINARY, list_rooms())])],
        close::UNSUPPORTED_DATA,
    )
    .await;
}

/// The limit is on the length in the header: a frame that claims more than 64 KiB is
/// refused when its header arrives, before any of its payload is read or buffered.
/// Only a few bytes of payload are sent here, so a server that waited for the rest
/// would never answer.
#[tokio::test]
async fn a_frame_declaring_more_than_64_kib_closes_with_1009_at_once() {
    let max = limits::MAX_FRAME_BYTES as u64;
    let huge = |len: u64| vec![RawFrame::text("{\"type\":").declaring(len)];
    each_closes_with(
        vec![
            ("64 KiB + 1", huge(max + 1)),
            ("16 MiB", huge(16 << 20)),
            ("2^63 - 1", huge(i64::MAX as u64)),
            (
                "two fragments of 40 KiB",
                vec![
                    RawFrame::text(vec![b' '; 40 << 10]).not_final(),
                    RawFrame::new(CONTINUATION, vec![b' '; 40 << 10]),
                ],
            ),
        ],
        close::MESSAGE_TOO_BIG,
    )
    .await;
}

/// Exactly at the limit, in one frame or in fragments, a message is read whole: a
/// hello padded with spaces to 64 KiB is welcomed.
#[tokio::test]
async fn a_message_of_exactly_64_kib_is_read() {
    let server = common::start().await;
    let hello = |name: &str| {
        let json = format!(r#"{{"type":"hello","protocol":{PROTOCOL_VERSION},"name":"{name}"#);
        let pad = limits::MAX_FRAME_BYTES - json.len() - 2;
        format!("{json}{}\"}}", " ".repeat(pad)).into_bytes()
    };

    let mut whole = RawWs::connect(server.addr).await;
    let text = hello("whole");
    assert_eq!(text.len(), limits::MAX_FRAME_BYTES);
    whole.send(&[RawFrame::text(text)]).await;
    assert!(matches!(whole.recv().await, ServerMsg::Welcome { you, .. } if you.name == "whole"));

    let mut parts = RawWs::connect(server.addr).await;
    let text = hello("parts");
    let (a, rest) = text.split_at(10);
    let (b, c) = rest.split_at(40_000);
    parts
        .send(&[
            RawFrame::text(a).not_final(),
            RawFrame::new(PING, "interleaved control frames are fine"),
            RawFrame::new(CONTINUATION, b).not_final(),
            RawFrame::new(CONTINUATION, c),
        ])
        .await;
    // The ping is answered first: it was complete before the message was.
    assert_eq!(
        parts.next_frame().await,
        Some((PONG, b"interleaved control frames are fine".to_vec()))
    );
    assert!(matches!(parts.recv().await, ServerMsg::Welcome { you, .. } if you.name == "parts"));

    // Both connections are still open and answering.
    for ws in [&mut whole, &mut parts] {
        ws.send(&[RawFrame::text("not json")]).await;
        assert!(matches!(
            ws.recv().await,
            ServerMsg::Error {
                code: ErrorCode::BadJson,
                ..
            }
        ));
    }
}
