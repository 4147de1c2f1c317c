//! One WebSocket connection, driven by one task that both reads and writes.
//!
//! Reading: frames are decoded into hub commands (or error replies), rate-limited, and
//! checked against the idle deadline. Writing: frames the hub queued in the
//! connection's [`Outbox`] go out in one vectored write per batch, straight from the
//! shared buffers the hub encoded once (no copy into a per-connection buffer), with the
//! WebSocket frame headers built beside them. Pings and the close handshake go through
//! tungstenite, which also answers the client's pings.
//!
//! Why not tungstenite for the text frames too, and why not a reader task and a writer
//! task: tungstenite copies every frame into a write buffer that keeps its largest
//! size for the life of the connection (a `joined` with history made it several KiB
//! per idle socket), and a split socket costs a lock and a second future per
//! connection. Both ends of the socket in one `poll` also means a frame is never
//! interleaved with a control frame: our frames are written only between
//! tungstenite's, and tungstenite is asked to read (which may write a pong) only
//! between ours.
//!
//! The connection ends when the peer closes or breaks the protocol, when it stays
//! silent past the idle timeout, or when a close was requested (by the hub, or by the
//! connection itself on bad input): queued frames and the close frame are then sent
//! and the peer gets a moment to answer.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    panic::AssertUnwindSafe,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use confab_shared::{ErrorCode, ServerMsg, close, limits};
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::{Instant, Sleep, sleep_until, timeout},
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Bytes, Error as WsError, Message, Utf8Bytes,
        error::{CapacityError, ProtocolError},
        protocol::{CloseFrame, WebSocketConfig},
    },
};

use crate::{
    hub::{Event, HubHandle, Identity, TrySend},
    outbox::{Next, Outbox, OutboxRx},
    protocol,
    ratelimit::{Bucket, RateLimit, Verdict},
};

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub queue_capacity: usize,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub rate_limit: RateLimit,
}

/// How long a peer has to answer our close frame, and how long we try to send it.
const CLOSE_GRACE: Duration = Duration::from_secs(3);
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

/// One upgraded connection, as its task owns it.
///
/// Everything the task needs is built here, before the task's future exists, and the
/// future only borrows it: an `async fn` taking these as arguments would keep a copy
/// of each argument beside the local it is moved into, for the life of the
/// connection (`-Zprint-type-sizes` showed ~500 bytes of such copies per socket).
pub struct Connection<S, H> {
    socket: Socket<S>,
    hub: HubHandle,
    settings: Settings,
    peer: SocketAddr,
    id: u64,
    /// The connection's own handle on its outbox, to ask for its close on bad input.
    outbox: Outbox,
    /// The hub's `Connect` event, if the hub's queue was full when the connection was
    /// made (boxed: it is sent once and then gone).
    connect: Option<Box<Event>>,
    /// Whatever must live exactly as long as the connection (its admission ticket).
    _held: H,
}

/// Serves an upgraded connection of `identity` until it ends, in a future small enough
/// to keep one per socket. `held` is dropped when the connection ends.
pub fn serve<S, H>(
    ws: WebSocketStream<S>,
    hub: HubHandle,
    settings: Settings,
    peer: SocketAddr,
    identity: Identity,
    held: H,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = hub.next_session_id();
    let (outbox, rx) = Outbox::new(settings.queue_capacity);
    let connect = Event::Connect {
        id,
        outbox: outbox.clone(),
        identity,
    };
    let connect = match hub.try_send(connect) {
        TrySend::Sent => None,
        TrySend::Full(event) => Some(Box::new(event)),
        // The hub is gone: the connection will find out at its first request.
        TrySend::Stopped => None,
    };
    let mut connection = Connection {
        socket: Socket {
            ws,
            rx,
            pending: VecDeque::new(),
            written: 0,
            ping_wanted: false,
            control_queued: false,
            socket_full: false,
        },
        hub,
        settings,
        peer,
        id,
        outbox,
        connect,
        _held: held,
    };
    supervised(peer, async move { connection.run().await })
}

impl<S, H> Connection<S, H>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async fn run(&mut self) {
        if let Some(connect) = self.connect.take()
            && !Box::pin(self.hub.send(*connect)).await
        {
            return;
        }
        tracing::debug!(session = self.id, peer = %self.peer, "connected");
        run(
            &mut self.socket,
            self.id,
            &self.hub,
            &self.outbox,
            &self.settings,
        )
        .await;
        tracing::debug!(session = self.id, peer = %self.peer, "disconnected");
    }
}

/// However the connection ends — returning, or unwinding from a panic — the hub forgets
/// the session, so its name and presence never outlive it.
impl<S, H> Drop for Connection<S, H> {
    fn drop(&mut self) {
        self.hub.leave(self.id);
    }
}

/// What the connection's loop reacts to next.
enum Step {
    /// A text frame from the client.
    Text(Utf8Bytes),
    /// A binary frame: not part of the protocol.
    Binary,
    /// Any other frame (ping, pong): the peer is alive.
    Traffic,
    /// A read error that the client should hear about, as a close code and reason.
    BadInput(u16, String),
    /// The peer closed or the socket failed: nothing more can be said.
    Gone,
    /// A close was requested through the outbox.
    Close(CloseFrame),
    /// The hub let go of the session and everything queued is written.
    Ended,
    /// The timer fired: the idle deadline, or time to ping.
    Timer,
}

async fn run<S>(
    socket: &mut Socket<S>,
    id: u64,
    hub: &HubHandle,
    outbox: &Outbox,
    settings: &Settings,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut bucket = Bucket::new(settings.rate_limit, std::time::Instant::now());
    // One timer for both deadlines. Traffic moves `deadline` without touching the
    // timer; when the timer fires early, it is set again for what is due next.
    let mut deadline = Instant::now() + settings.idle_timeout;
    let mut next_ping = Instant::now() + settings.ping_interval;
    let timer = sleep_until(deadline.min(next_ping));
    tokio::pin!(timer);
    // Set once the connection asked the hub to close it (flooding): the requests that
    // follow are not read any more.
    let mut closing = false;
    loop {
        let step = std::future::poll_fn(|cx| socket.poll_step(cx, timer.as_mut())).await;
        match step {
            Step::Text(text) => {
                if closing {
                    continue;
                }
                deadline = Instant::now() + settings.idle_timeout;
                // Refusals go through the hub too, so replies keep the order of requests.
                let event = match bucket.take(std::time::Instant::now()) {
                    Verdict::Allow => match protocol::parse(text.as_str()) {
                        Ok(cmd) => Event::Command { id, cmd },
                        Err(reply) => Event::Reject { id, reply },
                    },
                    Verdict::Refuse { retry_after } => Event::Reject {
                        id,
                        reply: rate_limited(retry_after),
                    },
                    Verdict::Flooding => {
                        tracing::info!(session = id, "closing a flooding client");
                        // Through the hub, so the refusals already on their way arrive
                        // before the close.
                        closing = true;
                        Event::Kick {
                            id,
                            code: close::POLICY_VIOLATION,
                            reason: "flooding: too many messages after being rate limited",
                        }
                    }
                };
                // Most of the time the hub's queue has room. Waiting for it is rare, and
                // boxed so that its state is not part of every idle connection's task.
                let event = match hub.try_send(event) {
                    TrySend::Sent => continue,
                    TrySend::Stopped => return,
                    TrySend::Full(event) => event,
                };
                if !Box::pin(hub.send(event)).await {
                    return;
                }
            }
            Step::Binary => outbox.close(
                close::UNSUPPORTED_DATA,
                "binary frames are not supported: send JSON text",
            ),
            Step::Traffic => deadline = Instant::now() + settings.idle_timeout,
            Step::BadInput(code, reason) => {
                tracing::debug!(session = id, code, %reason, "closing on bad input");
                outbox.close(code, &reason);
            }
            Step::Timer => {
                let now = Instant::now();
                if now >= deadline {
                    tracing::debug!(session = id, "idle timeout");
                    outbox.close(close::IDLE_TIMEOUT, "no traffic within the idle timeout");
                    continue;
                }
                if now >= next_ping {
                    socket.ping_wanted = true;
                    next_ping = now + settings.ping_interval;
                }
                timer.as_mut().reset(deadline.min(next_ping));
            }
            Step::Close(frame) => {
                // Whatever happens, this is the end: the rest is best effort. Boxed like
                // the hub's queue above: only a closing connection needs this state.
                let _ = Box::pin(timeout(CLOSE_GRACE, socket.close(frame))).await;
                return;
            }
            Step::Gone | Step::Ended => return,
        }
    }
}

/// The socket and what is on its way out.
struct Socket<S> {
    ws: WebSocketStream<S>,
    rx: OutboxRx,
    /// Frames taken from the outbox and not yet written (the first maybe in part).
    pending: VecDeque<Utf8Bytes>,
    /// Bytes of the first pending frame (header and payload) already written.
    written: usize,
    /// A ping is due; tungstenite sends it at the next frame boundary.
    ping_wanted: bool,
    /// tungstenite may hold control frames not yet flushed: it was asked to read (which
    /// queues pongs and the close reply) or to send a ping since its last flush.
    control_queued: bool,
    /// The last write found the socket full, and the outbox was told so.
    socket_full: bool,
}

/// What the write side did.
enum Wrote {
    /// Everything is written and nothing else is queued.
    Idle,
    /// Blocked on the socket, or yielding after a long run of writes.
    Busy,
    /// The hub let go of the session and everything is written.
    Ended,
}

impl<S> Socket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_step(&mut self, cx: &mut Context<'_>, timer: Pin<&mut Sleep>) -> Poll<Step> {
        // A close request goes before everything, so even a connection whose peer does
        // not read is told why it is dropped.
        if let Poll::Ready(frame) = self.rx.poll_close(cx) {
            return Poll::Ready(Step::Close(frame));
        }
        match self.poll_write(cx) {
            Err(()) => return Poll::Ready(Step::Gone),
            Ok(Wrote::Ended) => return Poll::Ready(Step::Ended),
            Ok(Wrote::Idle | Wrote::Busy) => {}
        }
        // Reading may make tungstenite write a pong: only between our frames.
        if self.written == 0 {
            self.control_queued = true;
            match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Ready(None) => return Poll::Ready(Step::Gone),
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(match close_for(&e) {
                        Some((code, reason)) => Step::BadInput(code, reason),
                        None => Step::Gone,
                    });
                }
                Poll::Ready(Some(Ok(Message::Text(text)))) => {
                    return Poll::Ready(Step::Text(text));
                }
                Poll::Ready(Some(Ok(Message::Binary(_)))) => return Poll::Ready(Step::Binary),
                Poll::Ready(Some(Ok(_))) => return Poll::Ready(Step::Traffic),
                Poll::Pending => {}
            }
        }
        if timer.poll(cx).is_ready() {
            return Poll::Ready(Step::Timer);
        }
        Poll::Pending
    }

    /// Writes what the outbox holds, as far as the socket takes it. `Err` when the
    /// socket failed.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<Wrote, ()> {
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

    /// Tells the outbox when the socket starts or stops refusing bytes: a full queue
    /// then means a slow client (see [`crate::outbox`]).
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
    async fn close(&mut self, frame: CloseFrame) {
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
    /// Where a connection lays its frames end to end for one write: one buffer per
    /// runtime thread rather than per connection, because it is only used within one
    /// poll. Frames are copied in (a copy is cheaper than a kernel walk over a
    /// two-slice-per-frame `writev` for chat-sized frames) and an idle connection holds
    /// no write buffer at all.
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

/// Runs one connection's future so that a panic in it (a bug) is logged and ends only
/// that connection; the server and everyone else carry on.
///
/// A plain function returning a combinator rather than an `async fn`: an `async fn`
/// would keep its `connection` argument and the future it awaits side by side in its
/// state, and the spawned task of every connection was twice as big as it needed to be
/// (4,088 bytes instead of ~2,000, `-Zprint-type-sizes`).
pub fn supervised(
    peer: SocketAddr,
    connection: impl Future<Output = ()>,
) -> impl Future<Output = ()> {
    AssertUnwindSafe(connection)
        .catch_unwind()
        .map(move |outcome| {
            if let Err(panic) = outcome {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic".to_owned());
                tracing::error!(%peer, "connection task panicked: {what}; the connection is closed, the server carries on");
            }
        })
}

fn rate_limited(retry_after: Duration) -> ServerMsg {
    let retry_after_ms = u64::try_from(retry_after.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    ServerMsg::Error {
        code: ErrorCode::RateLimited,
        message: format!("too many messages: wait {retry_after_ms} ms"),
        room: None,
        client_id: None,
        retry_after_ms: Some(retry_after_ms),
    }
}

/// The close code and reason for a read error, or `None` when the socket is simply gone.
fn close_for(err: &WsError) -> Option<(u16, String)> {
    match err {
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => Some((
            close::MESSAGE_TOO_BIG,
            format!("message of {size} bytes exceeds the limit of {max_size}"),
        )),
        WsError::Capacity(e) => Some((close::MESSAGE_TOO_BIG, e.to_string())),
        WsError::Utf8(_) => Some((
            close::INVALID_PAYLOAD,
            "text frame is not valid UTF-8".into(),
        )),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(e) => Some((close::PROTOCOL_ERROR, e.to_string())),
        WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Io(_) => None,
        other => Some((close::INTERNAL_ERROR, other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn a_panicking_connection_is_contained() {
        let peer: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let task = tokio::spawn(supervised(peer, async {
            panic!("a bug in one connection");
        }));
        task.await
            .expect("the supervised task itself completes normally");
    }

    #[tokio::test]
    async fn a_session_is_forgotten_however_its_connection_ends() {
        let (hub, mut events) = HubHandle::channel();
        let (server_end, _client_end) = tokio::io::duplex(1024);
        let ws = WebSocketStream::from_raw_socket(
            server_end,
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        let settings = Settings {
            queue_capacity: 8,
            ping_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            rate_limit: RateLimit {
                per_sec: 1.0,
                burst: 1.0,
            },
        };
        let peer = "127.0.0.1:1".parse().expect("addr");
        let connection = serve(ws, hub, settings, peer, Identity::Guest, ());
        // The client end stays open and silent: the connection is dropped from outside,
        // as when its task is cancelled or unwinds from a panic.
        let outcome = tokio::time::timeout(Duration::from_millis(50), connection).await;
        assert!(outcome.is_err(), "still serving when dropped");
        let mut seen = Vec::new();
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_secs(1), events.recv()).await
        {
            seen.push(event);
        }
        assert!(
            matches!(seen.first(), Some(Event::Connect { .. })),
            "{seen:?}"
        );
        assert!(
            seen.iter()
                .any(|e| matches!(e, Event::Disconnect { id } if *id == 1)),
            "{seen:?}"
        );
    }
}
