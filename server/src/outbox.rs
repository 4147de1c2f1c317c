//! The outgoing side of one connection, as seen by everything that is not the socket.
//!
//! Two channels, because they fail differently:
//! - frames go through a *bounded* queue. Pushing never waits: a hub that waited on one
//!   slow reader would stall the whole chat. A full queue means the client is not
//!   keeping up, and it is disconnected instead of being buffered without bound.
//! - a close request goes through a `watch` cell, which always has room, so a client
//!   can be told why it is being dropped even when its queue is full. The first reason
//!   set wins.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{
    Utf8Bytes,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

/// Sending half, cheap to clone: the hub holds one per session, the connection's reader
/// another (for error replies).
#[derive(Debug, Clone)]
pub struct Outbox {
    frames: mpsc::Sender<Utf8Bytes>,
    close: Arc<watch::Sender<Option<CloseFrame>>>,
}

/// Receiving half, owned by the connection's writer.
#[derive(Debug)]
pub struct OutboxRx {
    pub frames: mpsc::Receiver<Utf8Bytes>,
    pub close: watch::Receiver<Option<CloseFrame>>,
}

/// The queue was full (the client is too slow) or the connection is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("outgoing queue full or closed")]
pub struct PushError;

impl Outbox {
    pub fn new(capacity: usize) -> (Outbox, OutboxRx) {
        let (frames_tx, frames_rx) = mpsc::channel(capacity.max(1));
        let (close_tx, close_rx) = watch::channel(None);
        (
            Outbox {
                frames: frames_tx,
                close: Arc::new(close_tx),
            },
            OutboxRx {
                frames: frames_rx,
                close: close_rx,
            },
        )
    }

    /// Queues one encoded frame without waiting.
    pub fn push(&self, frame: Utf8Bytes) -> Result<(), PushError> {
        self.frames.try_send(frame).map_err(|_| PushError)
    }

    /// Asks the writer to send a close frame and end the connection. Later requests are
    /// ignored so the first, most specific reason reaches the client.
    pub fn close(&self, code: u16, reason: &str) {
        self.close.send_if_modified(|slot| {
            if slot.is_some() {
                return false;
            }
            *slot = Some(CloseFrame {
                code: CloseCode::from(code),
                reason: Utf8Bytes::from(reason.to_owned()),
            });
            true
        });
    }

    /// Whether a close has been requested.
    pub fn is_closing(&self) -> bool {
        self.close.borrow().is_some()
    }
}

impl OutboxRx {
    /// Resolves with the close frame once one is requested; never resolves otherwise.
    pub async fn closed(close: &mut watch::Receiver<Option<CloseFrame>>) -> CloseFrame {
        loop {
            if let Some(frame) = close.borrow_and_update().clone() {
                return frame;
            }
            if close.changed().await.is_err() {
                // Every sender is gone without asking for a close: nothing will.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_refuses_instead_of_growing() {
        let (outbox, mut rx) = Outbox::new(2);
        assert_eq!(outbox.push("a".into()), Ok(()));
        assert_eq!(outbox.push("b".into()), Ok(()));
        assert_eq!(outbox.push("c".into()), Err(PushError));
        assert_eq!(rx.frames.try_recv().ok(), Some("a".into()));
        assert_eq!(outbox.push("c".into()), Ok(()));
    }

    #[tokio::test]
    async fn first_close_reason_wins() {
        let (outbox, mut rx) = Outbox::new(1);
        assert!(!outbox.is_closing());
        outbox.close(4000, "too slow");
        outbox.close(1001, "shutting down");
        let frame = OutboxRx::closed(&mut rx.close).await;
        assert_eq!(u16::from(frame.code), 4000);
        assert_eq!(frame.reason.as_str(), "too slow");
    }
}
