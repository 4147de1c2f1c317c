//! One WebSocket connection: a reader that decodes frames into hub commands and a
//! writer that drains the connection's [`Outbox`] onto the socket.
//!
//! The reader owns the connection's lifetime. It ends when the peer closes, breaks the
//! protocol, goes silent past the idle timeout, or when a close was requested and the
//! peer had a moment to answer it. The writer ends when the close frame is sent or when
//! nothing can reach the outbox any more.

use std::{net::SocketAddr, time::Duration};

use confab_shared::{ErrorCode, ServerMsg, close, limits};
use std::panic::AssertUnwindSafe;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::{Instant, sleep_until, timeout},
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Bytes, Error as WsError, Message,
        error::{CapacityError, ProtocolError},
        protocol::WebSocketConfig,
    },
};

use crate::{
    hub::{Event, HubHandle, Identity},
    outbox::{CloseWatch, Next, Outbox, OutboxRx},
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
/// Frames written per flush: bounds how long the writer goes without checking for a
/// close request.
const WRITE_BATCH: usize = 64;

/// The tungstenite configuration every connection uses.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(limits::MAX_FRAME_BYTES))
        .max_frame_size(Some(limits::MAX_FRAME_BYTES))
        // The defaults (128 KiB each) would cost more memory per idle socket than
        // everything else together; chat frames are small. tungstenite allocates the
        // read buffer up front and keeps it: 1 KiB holds a client's usual burst (a few
        // sends) and saves 3 KiB per idle socket over 4 KiB (docs/PERFORMANCE.md).
        .read_buffer_size(1024)
        .write_buffer_size(16 * 1024)
        // A peer that stops reading fills this, then writes fail and the connection
        // ends, rather than buffering without bound.
        .max_write_buffer_size(256 * 1024)
}

/// Serves one upgraded connection of `identity` until it ends.
pub async fn serve<S>(
    ws: WebSocketStream<S>,
    hub: HubHandle,
    settings: Settings,
    peer: SocketAddr,
    identity: Identity,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = hub.next_session_id();
    let (outbox, rx) = Outbox::new(settings.queue_capacity);
    if !hub
        .send(Event::Connect {
            id,
            outbox: outbox.clone(),
            identity,
        })
        .await
    {
        return;
    }
    tracing::debug!(session = id, %peer, "connected");
    // However this function ends — returning, or unwinding from a panic — the hub
    // forgets the session, so its name and presence never outlive it.
    let _leave = Departure {
        hub: hub.clone(),
        id,
    };
    let (sink, stream) = ws.split();
    let close_watch = rx.close_watch();
    let reader = read_loop(stream, id, &hub, outbox, close_watch, &settings);
    let writer = write_loop(sink, rx, settings.ping_interval);
    let ((), ()) = tokio::join!(reader, writer);
    tracing::debug!(session = id, %peer, "disconnected");
}

async fn read_loop<S>(
    mut stream: futures_util::stream::SplitStream<WebSocketStream<S>>,
    id: u64,
    hub: &HubHandle,
    outbox: Outbox,
    close_watch: CloseWatch,
    settings: &Settings,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut deadline = Instant::now() + settings.idle_timeout;
    let mut closing = false;
    let mut bucket = Bucket::new(settings.rate_limit, std::time::Instant::now());
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            () = sleep_until(deadline) => {
                if !closing {
                    tracing::debug!(session = id, "idle timeout");
                    outbox.close(close::IDLE_TIMEOUT, "no traffic within the idle timeout");
                }
                break;
            }
            _ = close_watch.closed(), if !closing => {
                // Our close frame is on its way: give the peer a moment to answer it.
                closing = true;
                deadline = Instant::now() + CLOSE_GRACE;
                continue;
            }
        };
        let msg = match next {
            None => break,
            Some(Ok(msg)) => msg,
            Some(Err(err)) => {
                if let Some((code, reason)) = close_for(&err) {
                    tracing::debug!(session = id, %err, code, "closing on bad input");
                    outbox.close(code, &reason);
                }
                break;
            }
        };
        if !closing {
            deadline = Instant::now() + settings.idle_timeout;
        }
        match msg {
            Message::Text(text) if !closing => {
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
                        deadline = Instant::now() + CLOSE_GRACE;
                        Event::Kick {
                            id,
                            code: close::POLICY_VIOLATION,
                            reason: "flooding: too many messages after being rate limited",
                        }
                    }
                };
                if !hub.send(event).await {
                    break;
                }
            }
            Message::Binary(_) if !closing => {
                outbox.close(
                    close::UNSUPPORTED_DATA,
                    "binary frames are not supported: send JSON text",
                );
            }
            // Pings are answered by tungstenite; the close handshake completes on the next
            // read, which then ends the stream.
            _ => {}
        }
    }
    // Now rather than when the writer is done too: the hub's copy of the outbox is
    // what keeps the writer going.
    hub.send(Event::Disconnect { id }).await;
}

/// Tells the hub a session is gone when dropped.
struct Departure {
    hub: HubHandle,
    id: u64,
}

impl Drop for Departure {
    fn drop(&mut self) {
        self.hub.leave(self.id);
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

async fn write_loop<S>(
    mut sink: futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    rx: OutboxRx,
    ping_interval: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let close_frame = loop {
        // Writing can block on a peer that does not read; racing it against the close
        // request is what lets a stuck connection still be told why it is dropped.
        tokio::select! {
            biased;
            frame = rx.closed() => break Some(frame),
            step = async {
                tokio::select! {
                    next = rx.recv_many(&mut batch, WRITE_BATCH) => {
                        if let Next::Ended = next {
                            return Ok(false);
                        }
                        for frame in batch.drain(..) {
                            sink.feed(Message::Text(frame)).await?;
                        }
                        sink.flush().await?;
                        Ok(true)
                    }
                    _ = ping.tick() => {
                        sink.send(Message::Ping(Bytes::new())).await?;
                        Ok(true)
                    }
                }
            } => match step {
                Ok(true) => {}
                Ok(false) => break None,
                Err::<_, WsError>(_) => return,
            },
        }
    };
    let end = async {
        match close_frame {
            Some(frame) => {
                // What was queued before the close (such as the errors that explain it)
                // goes out first, as far as the grace period allows.
                while let Some(queued) = rx.try_recv() {
                    sink.feed(Message::Text(queued)).await?;
                }
                sink.send(Message::Close(Some(frame))).await
            }
            None => sink.close().await,
        }
    };
    let _ = timeout(CLOSE_GRACE, end).await;
}

#[cfg(test)]
mod tests {
    use super::*;

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
    async fn a_session_is_forgotten_even_when_its_task_unwinds() {
        let (hub, mut events) = HubHandle::channel();
        let task = tokio::spawn(supervised("127.0.0.1:1".parse().expect("addr"), {
            let hub = hub.clone();
            async move {
                let _leave = Departure { hub, id: 7 };
                panic!("boom");
            }
        }));
        task.await.expect("contained");
        assert!(matches!(
            events.recv().await,
            Some(Event::Disconnect { id: 7 })
        ));
    }
}
