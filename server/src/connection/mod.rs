//! One WebSocket connection, driven by one task that both reads and writes.
//!
//! Reading: frames are decoded into hub commands (or error replies), rate-limited, and
//! checked against the idle deadline. Writing: frames the hub queued in the
//! connection's [`SendQueue`] are put on the socket by the frame writer in `socket.rs`,
//! beside tungstenite, which sends the pings and the close handshake and answers the
//! client's pings.
//!
//! Why not a reader task and a writer task: a split socket costs a lock and a second
//! future per connection. Both ends of the socket in one `poll` is also what lets the
//! frame writer keep our frames and tungstenite's from ever cutting into each other.
//!
//! The connection ends when the peer closes or breaks the protocol, when it stays
//! silent past the idle timeout, or when a close was requested (by the hub, or by the
//! connection itself on bad input): queued frames and the close frame are then sent
//! and the peer gets a moment to answer. How it ended (who closed, with which code) is
//! counted for `/metrics`.
//!
//! Every log line about a connection carries its id as the field `conn_id` (the hub's
//! lines about it too), so a log shipper can follow one connection. A field, not a
//! `tracing` span around the task: a span costs each connection a few hundred bytes
//! for as long as it is open (its slot and formatted fields in the subscriber; an idle
//! socket costs 3.8 KiB in all, docs/PERFORMANCE.md), and entering it on every poll a
//! lock in the log filter, while nothing the task calls logs on its own.

use std::{
    net::SocketAddr,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use confab_shared::{ErrorCode, ServerMsg, close};
use futures_util::FutureExt;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::{Instant, Sleep, sleep_until, timeout},
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Error as WsError, Message, Utf8Bytes,
        error::{CapacityError, ProtocolError},
        protocol::CloseFrame,
    },
};

use crate::{
    hub::{Event, HubSender, Identity, TrySend},
    metrics::{ClosedBy, Limit, Metrics, NO_CLOSE_FRAME, NO_STATUS},
    protocol,
    ratelimit::{Bucket, RateLimit, Verdict},
    send_queue::{QueueLimits, SendQueue},
};

mod socket;

pub use socket::websocket_config;
use socket::{Socket, Wrote};

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub queue: QueueLimits,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub rate_limit: RateLimit,
    /// Where connections count how they open and end, and their rate-limit refusals.
    pub metrics: Arc<Metrics>,
}

/// How long a peer has to answer our close frame, and how long we try to send it.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// One upgraded connection, as its task owns it.
///
/// Everything the task needs is built here, before the task's future exists, and the
/// future only borrows it: an `async fn` taking these as arguments would keep a copy
/// of each argument beside the local it is moved into, for the life of the
/// connection (docs/PERFORMANCE.md, "What each change bought", step 10).
pub struct Connection<S, H> {
    socket: Socket<S>,
    hub: HubSender,
    settings: Settings,
    peer: SocketAddr,
    id: u64,
    /// The connection's own handle on its queue, to ask for its close on bad input.
    queue: SendQueue,
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
    hub: HubSender,
    settings: Settings,
    peer: SocketAddr,
    identity: Identity,
    held: H,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = hub.next_conn_id();
    let (queue, rx) = SendQueue::new(settings.queue);
    let connect = Event::Connect {
        id,
        queue: queue.clone(),
        identity,
    };
    let connect = match hub.try_send(connect) {
        TrySend::Sent => None,
        TrySend::Full(event) => Some(Box::new(event)),
        // The hub is gone: the connection will find out at its first request.
        TrySend::Stopped => None,
    };
    settings.metrics.connections_opened.increment(1);
    settings.metrics.connections_open.increment(1.0);
    let mut connection = Connection {
        socket: Socket::new(ws, rx),
        hub,
        settings,
        peer,
        id,
        queue,
        connect,
        _held: held,
    };
    supervised(peer, id, async move { connection.run().await })
}

impl<S, H> Connection<S, H>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async fn run(&mut self) {
        if let Some(connect) = self.connect.take()
            && !Box::pin(self.hub.send(*connect)).await
        {
            // The hub is gone: the server is stopping.
            self.settings
                .metrics
                .connection_closed(ClosedBy::Server, close::GOING_AWAY);
            return;
        }
        tracing::debug!(conn_id = self.id, peer = %self.peer, "connected");
        let (by, code) = run(
            &mut self.socket,
            self.id,
            &self.hub,
            &self.queue,
            &self.settings,
        )
        .await;
        self.settings.metrics.connection_closed(by, code);
        tracing::debug!(conn_id = self.id, peer = %self.peer, ?by, code, "disconnected");
    }
}

/// However the connection ends — returning, or unwinding from a panic — the hub forgets
/// the connection, so its name and presence never outlive it.
impl<S, H> Drop for Connection<S, H> {
    fn drop(&mut self) {
        self.hub.leave(self.id);
        self.settings.metrics.connections_open.decrement(1.0);
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
    /// The peer's close frame, with its code (tungstenite answers it; the socket's end
    /// follows).
    PeerClose(u16),
    /// A read error that the client should hear about, as a close code and reason.
    BadInput(u16, String),
    /// The peer closed or the socket failed: nothing more can be said.
    Gone,
    /// A close was requested through the queue.
    Close(CloseFrame),
    /// The hub let go of the connection and everything queued is written.
    Ended,
    /// The timer fired: the idle deadline, or time to ping.
    Timer,
}

/// Serves the connection until it ends; returns who ended it, with which close code.
async fn run<S>(
    socket: &mut Socket<S>,
    id: u64,
    hub: &HubSender,
    queue: &SendQueue,
    settings: &Settings,
) -> (ClosedBy, u16)
where
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
    // The client's close code, once its close frame came.
    let mut peer_closed = None;
    loop {
        let step = std::future::poll_fn(|cx| poll_step(socket, cx, timer.as_mut())).await;
        match step {
            Step::Text(text) => {
                if closing {
                    continue;
                }
                deadline = Instant::now() + settings.idle_timeout;
                let verdict = bucket.take(std::time::Instant::now());
                closing = matches!(verdict, Verdict::Flooding);
                if !matches!(verdict, Verdict::Allow) {
                    settings.metrics.rate_limited(Limit::Messages);
                }
                let event = request(id, &text, verdict);
                // Most of the time the hub's queue has room. Waiting for it is rare, and
                // boxed so that its state is not part of every idle connection's task.
                let event = match hub.try_send(event) {
                    TrySend::Sent => continue,
                    TrySend::Stopped => return (ClosedBy::Server, close::GOING_AWAY),
                    TrySend::Full(event) => event,
                };
                if !Box::pin(hub.send(event)).await {
                    return (ClosedBy::Server, close::GOING_AWAY);
                }
            }
            Step::Binary => queue.close(
                close::UNSUPPORTED_DATA,
                "binary frames are not supported: send JSON text",
            ),
            Step::Traffic => deadline = Instant::now() + settings.idle_timeout,
            Step::PeerClose(code) => peer_closed = Some(code),
            Step::BadInput(code, reason) => {
                tracing::debug!(conn_id = id, code, reason = %crate::logsafe::text(&reason), "closing on bad input");
                queue.close(code, &reason);
            }
            Step::Timer => {
                let now = Instant::now();
                if now >= deadline {
                    tracing::debug!(conn_id = id, "idle timeout");
                    queue.close(close::IDLE_TIMEOUT, "no traffic within the idle timeout");
                    continue;
                }
                if now >= next_ping {
                    socket.want_ping();
                    next_ping = now + settings.ping_interval;
                }
                timer.as_mut().reset(deadline.min(next_ping));
            }
            Step::Close(frame) => {
                // Whatever happens, this is the end: the rest is best effort. Boxed like
                // the hub's queue above: only a closing connection needs this state.
                let code = u16::from(frame.code);
                let _ = Box::pin(timeout(CLOSE_GRACE, socket.close(frame))).await;
                return (ClosedBy::Server, code);
            }
            Step::Gone => return (ClosedBy::Client, peer_closed.unwrap_or(NO_CLOSE_FRAME)),
            // Let go by the hub without a close frame: the server ended it.
            Step::Ended => return (ClosedBy::Server, peer_closed.unwrap_or(NO_CLOSE_FRAME)),
        }
    }
}

/// What the hub is told about a text frame from the client, given the rate limit's
/// verdict on it. Refusals go through the hub too, so replies keep the order of
/// requests.
fn request(id: u64, text: &str, verdict: Verdict) -> Event {
    match verdict {
        Verdict::Allow => match protocol::parse(text) {
            Ok(cmd) => Event::Command { id, cmd },
            Err(reply) => Event::Reject { id, reply },
        },
        Verdict::Refuse { retry_after } => Event::Reject {
            id,
            reply: Box::new(rate_limited(retry_after)),
        },
        Verdict::Flooding => {
            tracing::info!(conn_id = id, "closing a flooding client");
            // Through the hub, so the refusals already on their way arrive before the
            // close.
            Event::Kick {
                id,
                code: close::POLICY_VIOLATION,
                reason: "flooding: too many messages after being rate limited",
            }
        }
    }
}

/// Waits for what the connection's loop reacts to next, writing queued frames on the
/// way. A close request goes first, so even a connection whose peer does not read is
/// told why it is dropped.
fn poll_step<S>(socket: &mut Socket<S>, cx: &mut Context<'_>, timer: Pin<&mut Sleep>) -> Poll<Step>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Poll::Ready(frame) = socket.poll_close(cx) {
        return Poll::Ready(Step::Close(frame));
    }
    match socket.poll_write(cx) {
        Err(()) => return Poll::Ready(Step::Gone),
        Ok(Wrote::Ended) => return Poll::Ready(Step::Ended),
        Ok(Wrote::Idle | Wrote::Busy) => {}
    }
    if let Poll::Ready(read) = socket.poll_read(cx) {
        return Poll::Ready(match read {
            None => Step::Gone,
            Some(Err(e)) => match close_for(&e) {
                Some((code, reason)) => Step::BadInput(code, reason),
                None => Step::Gone,
            },
            Some(Ok(Message::Text(text))) => Step::Text(text),
            Some(Ok(Message::Binary(_))) => Step::Binary,
            Some(Ok(Message::Close(frame))) => {
                Step::PeerClose(frame.map_or(NO_STATUS, |f| u16::from(f.code)))
            }
            Some(Ok(_)) => Step::Traffic,
        });
    }
    if timer.poll(cx).is_ready() {
        return Poll::Ready(Step::Timer);
    }
    Poll::Pending
}

/// Runs one connection's future so that a panic in it (a bug) is logged and ends only
/// that connection; the server and everyone else carry on.
///
/// A plain function returning a combinator rather than an `async fn`: an `async fn`
/// would keep its `connection` argument and the future it awaits side by side in its
/// state, and the spawned task of every connection was twice as big as it needed to be
/// (docs/PERFORMANCE.md, step 7).
pub fn supervised(
    peer: SocketAddr,
    conn_id: u64,
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
                tracing::error!(
                    conn_id,
                    %peer,
                    "connection task panicked: {}; the connection is closed, the server carries on",
                    crate::logsafe::text(&what)
                );
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

    #[tokio::test]
    async fn a_panicking_connection_is_contained() {
        let peer: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let task = tokio::spawn(supervised(peer, 1, async {
            panic!("a bug in one connection");
        }));
        task.await
            .expect("the supervised task itself completes normally");
    }

    #[tokio::test]
    async fn the_hub_forgets_a_connection_however_it_ends() {
        let (hub, mut events) = HubSender::channel();
        let (server_end, _client_end) = tokio::io::duplex(1024);
        let ws = WebSocketStream::from_raw_socket(
            server_end,
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        let settings = Settings {
            queue: QueueLimits {
                frames: 8,
                bytes: 1 << 20,
            },
            ping_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            rate_limit: RateLimit {
                per_sec: 1.0,
                burst: 1.0,
            },
            metrics: Arc::default(),
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
