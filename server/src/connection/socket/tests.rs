//! The frame writer over an in-memory socket whose buffer is far smaller than what is
//! written, so most writes are partial. The client's end is read as raw bytes and
//! parsed as RFC 6455 frames: a frame cut by another, or resumed at the wrong byte,
//! does not parse as the frames that were sent.

use std::{future::poll_fn, time::Duration};

use futures_util::task::noop_waker;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex},
    time::timeout,
};
use tokio_tungstenite::tungstenite::protocol::{
    Role,
    frame::coding::{Control, Data, OpCode},
};

use super::*;
use crate::send_queue::{QueueLimits, SendQueue};

/// The in-memory socket's buffer, each way.
const PIPE_BYTES: usize = 64;
const TEXT: OpCode = OpCode::Data(Data::Text);
const CLOSE: OpCode = OpCode::Control(Control::Close);
const PING: OpCode = OpCode::Control(Control::Ping);
const PONG: OpCode = OpCode::Control(Control::Pong);

/// A socket with a buffer of `pipe_bytes` each way, the queue that feeds it, and the
/// client's end.
async fn socket(pipe_bytes: usize) -> (Socket<DuplexStream>, SendQueue, DuplexStream) {
    let (server, client) = duplex(pipe_bytes);
    let ws = WebSocketStream::from_raw_socket(server, Role::Server, Some(websocket_config())).await;
    let (queue, rx) = SendQueue::new(QueueLimits {
        frames: 1024,
        bytes: 1 << 20,
    });
    (Socket::new(ws, rx), queue, client)
}

/// A frame as the client receives it.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    opcode: OpCode,
    payload: Vec<u8>,
}

fn text(body: &str) -> Frame {
    Frame {
        opcode: TEXT,
        payload: body.as_bytes().to_vec(),
    }
}

/// `len` bytes of text that differ from frame to frame and from byte to byte, so a
/// write resumed at the wrong offset shows.
fn body(frame: usize, len: usize) -> String {
    const LETTERS: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";
    (0..len)
        .map(|i| char::from(LETTERS[(frame * 31 + i * 7) % 26]))
        .collect()
}

/// Queues every body in the queue.
fn push_all(queue: &SendQueue, bodies: &[String]) {
    for body in bodies {
        queue.push(body.as_str().into()).expect("room in the queue");
    }
}

/// The first whole frame in `buf` and how many bytes it took, checked against what RFC
/// 6455 §5.2 asks of a server's frame: final, no reserved bits, not masked, the
/// shortest length encoding.
fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    let (&first, &second) = (buf.first()?, buf.get(1)?);
    assert_eq!(first & 0xf0, 0x80, "FIN set, no reserved bits: {first:#x}");
    assert_eq!(second & 0x80, 0, "a server's frames are not masked");
    let (len, header) = match second & 0x7f {
        126 => {
            let len = u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?);
            assert!(len >= 126, "a 16-bit length of {len}");
            (usize::from(len), 4)
        }
        127 => {
            let len = u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?);
            assert!(len > 0xffff, "a 64-bit length of {len}");
            (usize::try_from(len).expect("fits in memory"), 10)
        }
        short => (usize::from(short), 2),
    };
    let payload = buf.get(header..header + len)?.to_vec();
    let opcode = OpCode::from(first & 0x0f);
    Some((Frame { opcode, payload }, header + len))
}

/// Reads the client's end until `count` frames or a close frame have arrived, and
/// checks nothing follows them in what was read.
async fn read_frames(client: &mut DuplexStream, count: usize) -> Vec<Frame> {
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    loop {
        while let Some((frame, used)) = parse(&buf) {
            frames.push(frame);
            buf.drain(..used);
        }
        if frames.len() >= count || frames.last().is_some_and(|f: &Frame| f.opcode == CLOSE) {
            break;
        }
        let n = client.read_buf(&mut buf).await.expect("read");
        assert!(
            n > 0,
            "the server's end closed after {} frames",
            frames.len()
        );
    }
    assert!(buf.is_empty(), "bytes after the last frame: {buf:?}");
    frames
}

/// Writes until nothing is left to write. The client must be reading.
async fn write_queued(socket: &mut Socket<DuplexStream>) {
    poll_fn(|cx| match socket.poll_write(cx) {
        Ok(Wrote::Idle) => Poll::Ready(()),
        Ok(Wrote::Busy) => Poll::Pending,
        Ok(Wrote::Ended) | Err(()) => panic!("the socket ended while writing"),
    })
    .await;
}

/// Writes what the socket takes while the client is not reading, and checks that the
/// socket filled up inside a frame: the next write has to resume it.
fn write_until_full_mid_frame(socket: &mut Socket<DuplexStream>) {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(matches!(socket.poll_write(&mut cx), Ok(Wrote::Busy)));
    assert!(socket.written > 0, "the socket filled up inside a frame");
    assert!(socket.socket_full, "the queue was told the socket is full");
}

async fn within_a_while<F: Future>(future: F) -> F::Output {
    timeout(Duration::from_secs(10), future)
        .await
        .expect("done in time")
}

#[tokio::test]
async fn partial_writes_resume_where_they_stopped() {
    let (mut socket, queue, mut client) = socket(PIPE_BYTES).await;
    // Every length up to past the first 16-bit one: headers and payloads straddle the
    // 64-byte writes at every offset.
    let bodies: Vec<String> = (0..=140).map(|len| body(len, len)).collect();
    push_all(&queue, &bodies);
    write_until_full_mid_frame(&mut socket);

    let ((), frames) = within_a_while(async {
        tokio::join!(
            write_queued(&mut socket),
            read_frames(&mut client, bodies.len())
        )
    })
    .await;
    assert_eq!(frames, bodies.iter().map(|b| text(b)).collect::<Vec<_>>());
    assert!(socket.pending.is_empty());
    assert!(!socket.socket_full, "the queue was told the socket drained");
}

#[tokio::test]
async fn a_batch_larger_than_the_socket_and_the_scratch_buffer_arrives_whole() {
    // Around a 64-bit length and past the scratch buffer's size, among smaller frames.
    let lengths = [1_000, 65_535, 1_000, 65_536, 70_000, 125, 126, 1_000];
    // A small socket takes a little of each write; a large one all of it, so frames are
    // also cut where the scratch buffer ends.
    for pipe_bytes in [PIPE_BYTES, 1 << 20] {
        let (mut socket, queue, mut client) = socket(pipe_bytes).await;
        let bodies: Vec<String> = (0..40)
            .map(|i| body(i, lengths[i % lengths.len()]))
            .collect();
        assert!(bodies.iter().map(String::len).sum::<usize>() > 4 * SCRATCH_BYTES);
        push_all(&queue, &bodies);

        let ((), frames) = within_a_while(async {
            tokio::join!(
                write_queued(&mut socket),
                read_frames(&mut client, bodies.len())
            )
        })
        .await;
        assert_eq!(
            frames,
            bodies.iter().map(|b| text(b)).collect::<Vec<_>>(),
            "through a socket of {pipe_bytes} bytes"
        );
    }
}

#[tokio::test]
async fn a_close_requested_mid_batch_comes_after_every_queued_frame_whole() {
    let (mut socket, queue, mut client) = socket(PIPE_BYTES).await;
    let bodies: Vec<String> = (0..7).map(|i| body(i, 300)).collect();
    push_all(&queue, &bodies[..5]);
    write_until_full_mid_frame(&mut socket);
    // More frames arrive while the batch is half written, then the close request.
    push_all(&queue, &bodies[5..]);
    queue.close(4000, "too slow");
    let close = poll_fn(|cx| socket.poll_close(cx)).await;

    let client = async move {
        let frames = read_frames(&mut client, bodies.len() + 1).await;
        // Gone without answering: the close must not wait for more than the socket.
        drop(client);
        (bodies, frames)
    };
    let ((), (bodies, frames)) =
        within_a_while(async { tokio::join!(socket.close(close), client) }).await;
    let mut expected: Vec<Frame> = bodies.iter().map(|b| text(b)).collect();
    let mut close_payload = 4000u16.to_be_bytes().to_vec();
    close_payload.extend_from_slice(b"too slow");
    expected.push(Frame {
        opcode: CLOSE,
        payload: close_payload,
    });
    assert_eq!(frames, expected);
}

#[tokio::test]
async fn a_ping_due_mid_frame_waits_for_the_frame_to_end() {
    let (mut socket, queue, mut client) = socket(PIPE_BYTES).await;
    let bodies: Vec<String> = (0..3).map(|i| body(i, 300)).collect();
    push_all(&queue, &bodies);
    write_until_full_mid_frame(&mut socket);
    socket.want_ping();

    let ((), frames) = within_a_while(async {
        tokio::join!(
            write_queued(&mut socket),
            read_frames(&mut client, bodies.len() + 1)
        )
    })
    .await;
    // Not inside the frame it was asked for in (the frames would not parse), nor before.
    assert_eq!(frames.first(), Some(&text(&bodies[0])));
    let (pings, texts): (Vec<Frame>, Vec<Frame>) =
        frames.into_iter().partition(|f| f.opcode == PING);
    assert_eq!(
        pings,
        [Frame {
            opcode: PING,
            payload: Vec::new()
        }]
    );
    assert_eq!(texts, bodies.iter().map(|b| text(b)).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_client_is_read_only_between_frames_so_a_pong_never_cuts_one() {
    let (mut socket, queue, mut client) = socket(PIPE_BYTES).await;
    let bodies = [body(0, 300)];
    push_all(&queue, &bodies);
    write_until_full_mid_frame(&mut socket);
    // A masked ping with an empty payload, waiting to be read.
    client
        .write_all(&[0x80 | u8::from(PING), 0x80, 1, 2, 3, 4])
        .await
        .expect("write the ping");
    let waker = noop_waker();
    assert!(
        socket
            .poll_read(&mut Context::from_waker(&waker))
            .is_pending(),
        "read (and a pong queued) in the middle of a frame"
    );

    let ((), frames) = within_a_while(async {
        tokio::join!(write_queued(&mut socket), read_frames(&mut client, 1))
    })
    .await;
    assert_eq!(frames, [text(&bodies[0])]);
    let read = within_a_while(poll_fn(|cx| socket.poll_read(cx))).await;
    assert!(matches!(read, Some(Ok(Message::Ping(_)))), "{read:?}");
    let ((), frames) = within_a_while(async {
        tokio::join!(write_queued(&mut socket), read_frames(&mut client, 1))
    })
    .await;
    assert_eq!(
        frames,
        [Frame {
            opcode: PONG,
            payload: Vec::new()
        }]
    );
}

#[test]
fn frame_headers_follow_rfc_6455() {
    let header = |len| {
        let mut buf = [0; MAX_HEADER];
        let n = text_frame_header(len, &mut buf);
        buf[..n].to_vec()
    };
    assert_eq!(header(0), [0x81, 0]);
    assert_eq!(header(125), [0x81, 125]);
    assert_eq!(header(126), [0x81, 126, 0, 126]);
    assert_eq!(header(65_535), [0x81, 126, 0xff, 0xff]);
    assert_eq!(header(65_536), [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
}
