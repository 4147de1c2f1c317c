//! A connection's socket: the frame writer that bypasses tungstenite for text frames,
//! and the order it keeps with tungstenite's own frames.
//!
//! Two writers share one socket. tungstenite writes the control frames (our pings, the
//! pongs it answers the client's pings with, the close handshake) and reads the
//! client's frames. The text frames the hub queued in the connection's [`SendQueue`] are
//! written here instead, straight to the raw stream under tungstenite
//! ([`WebSocketStream::get_mut`]).
//!
//! Why not tungstenite for the text frames too: it copies every frame into a write
//! buffer that keeps its largest size for the life of the connection (after a `joined`
//! with history, docs/PERFORMANCE.md step 9). Here an idle connection holds no write
//! buffer and no frame storage at all.
//!
//! # Invariants
//!
//! - **No frame is ever cut by another.** Our frames start only at a frame boundary of
//!   tungstenite's: before each of our frames, everything tungstenite queued is
//!   flushed ([`Socket::poll_write`] and [`Socket::poll_drain`] call `poll_control`
//!   whenever `written == 0`). And tungstenite is asked to read — which may make it
//!   write a pong or the reply to a close — only between our frames
//!   ([`Socket::poll_read`] does nothing while a frame is half written). Both sides are
//!   driven from the connection's one task, so nothing else can interleave.
//! - **Frames leave the queue whole.** `pending` holds the frames taken from the queue
//!   and not yet written; `written` counts the bytes of the first one (header and
//!   payload) already on the socket. A partial write moves `written`; a frame is
//!   dropped from `pending` only once its last byte is written, and the next write
//!   resumes exactly where the last one stopped ([`Socket::advance`]).
//! - **One copy, one write.** Each write lays the pending frames (their headers built
//!   by [`text_frame_header`], then their payloads) end to end in a scratch buffer of
//!   [`SCRATCH_BYTES`] and writes it with one `poll_write` (not a `writev`: a copy is
//!   cheaper than the kernel walking two slices per chat-sized frame). The buffer is
//!   per runtime thread, not per connection, because it is only used within one poll.
//!   Whatever did not fit or was not taken is laid out again from `written` next time.
//! - **A full socket is reported.** When a write finds the socket full, the queue is
//!   told, so that a full queue then means a slow client (see [`crate::send_queue`]); it is
//!   told again once everything pending is written.
//! - **Fairness.** At most [`WRITES_PER_POLL`] writes per wake-up, then the task yields.
//! - **Close.** On a close request, every frame already queued is written whole, then
//!   tungstenite sends the close frame and waits for the client's answer.
//!
//! tungstenite is configured by [`websocket_config`]: a 512-byte read buffer, control
//! frames written straight through (`write_buffer_size` 0), and a 64 KiB cap on what
//! it may hold for a client that does not read.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use confab_shared::limits;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Bytes, Error as WsError, Message, Utf8Bytes,
        protocol::{CloseFrame, WebSocketConfig},
    },
};

use crate::send_queue::{Next, SendQueueRx};

/// Writes per wake-up before the task yields, so one busy connection cannot
/// hold a runtime thread while a close request or other connections wait.
const WRITES_PER_POLL: usize = 16;

/// The tungstenite configuration every connection uses.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(limits::MAX_FRAME_BYTES))
        .max_frame_size(Some(limits::MAX_FRAME_BYTES))
        // The default (128 KiB) would cost more memory per idle socket than everything
        // else together; client frames are small. tungstenite allocates the read buffer
        // up front and keeps it (docs/PERFORMANCE.md, memory per idle socket).
        .read_buffer_size(512)
        // tungstenite writes only control frames here (pings, pongs, the close).
        .write_buffer_size(0)
        // A peer that stops reading fills this, then writes fail and the connection
        // ends, rather than buffering without bound.
        .max_write_buffer_size(64 * 1024)
}

/// The socket and what is on its way out.
pub(super) struct Socket<S> {
    ws: WebSocketStream<S>,
    rx: SendQueueRx,
    /// Frames taken from the queue and not yet written (the first maybe in part).
    pending: VecDeque<Utf8Bytes>,
    /// Bytes of the first pending frame (header and payload) already written.
    written: usize,
    /// A ping is due; tungstenite sends it at the next frame boundary.
    ping_wanted: bool,
    /// tungstenite may hold control frames not yet flushed: it was asked to read (which
    /// queues pongs and the close reply) or to send a ping since its last flush.
    control_queued: bool,
    /// The last write found the socket full, and the queue was told so.
    socket_full: bool,
}

/// What the write side did.
pub(super) enum Wrote {
    /// Everything is written and nothing else is queued.
    Idle,
    /// Blocked on the socket, or yielding after a long run of writes.
    Busy,
    /// The hub let go of the connection and everything is written.
    Ended,
}

impl<S> Socket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    pub(super) fn new(ws: WebSocketStream<S>, rx: SendQueueRx) -> Self {
        Socket {
            ws,
            rx,
            pending: VecDeque::new(),
            written: 0,
            ping_wanted: false,
            control_queued: false,
            socket_full: false,
        }
    }

    /// The close frame once one is requested through the queue.
    pub(super) fn poll_close(&self, cx: &mut Context<'_>) -> Poll<CloseFrame> {
        self.rx.poll_close(cx)
    }

    /// Asks for a ping, sent by tungstenite at the next frame boundary.
    pub(super) fn want_ping(&mut self) {
        self.ping_wanted = true;
    }

    /// The client's next frame, read by tungstenite. Reading may make tungstenite write
    /// a pong, so it happens only between our frames: while one is half written this is
    /// `Pending` without registering for the read side, and the write side's wake-up
    /// (the socket taking bytes again) brings the task back.
    pub(super) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, WsError>>> {
        if self.written != 0 {
            return Poll::Pending;
        }
        self.control_queued = true;
        Pin::new(&mut self.ws).poll_next(cx)
    }

    /// Writes what the queue holds, as far as the socket takes it. `Err` when the
    /// socket failed.
    pub(super) fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<Wrote, ()> {
        for _ in 0..WRITES_PER_POLL {
            if self.written == 0 {
                // At a frame boundary: tungstenite's own frames (pongs, our ping) first.
                if self.poll_control(cx)?.is_pending() {
                    return Ok(Wrote::Busy);
                }
                if self.pending.is_empty() {
                    match self.rx.poll_take(cx, &mut self.pending) {
                        Poll::Ready(Next::Frames) => {}
                        Poll::Ready(Next::Ended) => return Ok(Wrote::Ended),
                        Poll::Pending => {
                            // Idle: hold no frame storage.
                            self.pending = VecDeque::new();
                            return Ok(Wrote::Idle);
                        }
                    }
                }
            }
            match self.poll_write_frames(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(())) => return Err(()),
                Poll::Pending => return Ok(Wrote::Busy),
            }
        }
        // More to write than one wake-up should do: come back after the others.
        cx.waker().wake_by_ref();
        Ok(Wrote::Busy)
    }

    /// Flushes tungstenite's queued control frames, after queueing a ping if one is due.
    fn poll_control(&mut self, cx: &mut Context<'_>) -> Result<Poll<()>, ()> {
        if !self.control_queued && !self.ping_wanted {
            return Ok(Poll::Ready(()));
        }
        self.control_queued = true;
        let mut ws = Pin::new(&mut self.ws);
        if self.ping_wanted {
            match ws.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    ws.as_mut()
                        .start_send(Message::Ping(Bytes::new()))
                        .map_err(|_| ())?;
                    self.ping_wanted = false;
                }
                Poll::Ready(Err(_)) => return Err(()),
                Poll::Pending => return Ok(Poll::Pending),
            }
        }
        match ws.poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.control_queued = false;
                Ok(Poll::Ready(()))
            }
            Poll::Ready(Err(_)) => Err(()),
            Poll::Pending => Ok(Poll::Pending),
        }
    }

    /// One write of as many pending frames as fit in the thread's scratch buffer.
    fn poll_write_frames(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            let mut skip = self.written;
            'frames: for frame in &self.pending {
                let mut header = [0; MAX_HEADER];
                let header_len = text_frame_header(frame.len(), &mut header);
                for part in [&header[..header_len], frame.as_bytes()] {
                    let from = skip.min(part.len());
                    skip -= from;
                    let room = SCRATCH_BYTES - buf.len();
                    if room == 0 {
                        break 'frames;
                    }
                    let take = (part.len() - from).min(room);
                    buf.extend_from_slice(&part[from..from + take]);
                }
            }
            if buf.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let n = match Pin::new(self.ws.get_mut()).poll_write(cx, buf) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Err(())),
                Poll::Ready(Ok(n)) => n,
                Poll::Pending => {
                    self.note_socket_full(true);
                    return Poll::Pending;
                }
            };
            self.advance(n);
            if self.pending.is_empty() {
                self.note_socket_full(false);
            }
            Poll::Ready(Ok(()))
        })
    }

    /// Tells the queue when the socket starts or stops refusing bytes: a full queue
    /// then means a slow client (see [`crate::send_queue`]).
    fn note_socket_full(&mut self, full: bool) {
        if self.socket_full != full {
            self.socket_full = full;
            self.rx.set_socket_full(full);
        }
    }

    /// Drops the frames the last write completed and remembers how far into the next
    /// one it got.
    fn advance(&mut self, mut n: usize) {
        while let Some(frame) = self.pending.front() {
            let len = text_frame_header(frame.len(), &mut [0; MAX_HEADER]) + frame.len();
            let left = len - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.written = 0;
            self.rx.written(frame.len());
            self.pending.pop_front();
        }
    }

    /// Writes every pending frame, tungstenite's before ours at each frame boundary.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        loop {
            if self.written == 0 {
                match self.poll_control(cx) {
                    Err(()) => return Poll::Ready(Err(())),
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(())) => {}
                }
                if self.pending.is_empty() {
                    return Poll::Ready(Ok(()));
                }
            }
            match self.poll_write_frames(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
    }

    /// Sends what is queued, then the close frame, then waits for the peer's answer.
    pub(super) async fn close(&mut self, frame: CloseFrame) {
        while let Some(queued) = self.rx.try_recv() {
            self.pending.push_back(queued);
        }
        if std::future::poll_fn(|cx| self.poll_drain(cx))
            .await
            .is_err()
        {
            return;
        }
        if self.ws.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        // The answer completes the handshake and ends the stream.
        while let Some(Ok(_)) = self.ws.next().await {}
    }
}

/// Bytes laid end to end for one write.
const SCRATCH_BYTES: usize = 64 * 1024;

thread_local! {
    /// Where a connection lays its frames end to end for one write (see the module
    /// documentation).
    static SCRATCH: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(SCRATCH_BYTES));
}

/// Longest WebSocket frame header the server writes: no mask, 64-bit length.
const MAX_HEADER: usize = 10;

/// Writes the header of a final, unmasked text frame of `len` payload bytes (RFC 6455
/// §5.2) into `buf`; returns its length.
fn text_frame_header(len: usize, buf: &mut [u8; MAX_HEADER]) -> usize {
    const FIN_TEXT: u8 = 0x81;
    buf[0] = FIN_TEXT;
    match (u8::try_from(len), u16::try_from(len)) {
        (Ok(short), _) if short < 126 => {
            buf[1] = short;
            2
        }
        (_, Ok(medium)) => {
            buf[1] = 126;
            buf[2..4].copy_from_slice(&medium.to_be_bytes());
            4
        }
        _ => {
            buf[1] = 127;
            buf[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    }
}

#[cfg(test)]
mod tests;
