//! The outgoing side of one connection, as seen by everything that is not the socket.
//!
//! - Frames go through a *bounded* queue. Pushing never waits: a hub that waited on one
//!   slow reader would stall the whole chat. A full queue means the client is not
//!   keeping up, and it is disconnected instead of being buffered without bound.
//! - A close request has a slot of its own, which always has room, so a client can be
//!   told why it is being dropped even when its queue is full. The first reason set
//!   wins.
//!
//! One small shared cell (a mutex-guarded `VecDeque` and two `Notify`s) rather than a
//! tokio `mpsc` channel plus a `watch`: an idle connection's outbox then holds no frame
//! storage at all (the channel kept a 32-slot block and cache-padded counters per
//! connection, ~1.9 KiB measured with massif), and a push is one uncontended lock, the
//! hub's hot path when it fans a message out to thousands of connections.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::{
    Utf8Bytes,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: frames queued, a close requested, or the last sender gone.
    wake_writer: Notify,
    /// Wakes everyone waiting in [`CloseWatch::closed`] when a close is requested.
    closing: Notify,
    capacity: usize,
    /// Live [`Outbox`] handles; at zero the writer's queue ends once drained.
    senders: AtomicUsize,
    /// Cleared when the writer's [`OutboxRx`] is dropped: nobody will send any more.
    receiver_alive: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Utf8Bytes>,
    close: Option<CloseFrame>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, and the state stays valid if it did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn closed(&self) -> CloseFrame {
        loop {
            let notified = self.closing.notified();
            tokio::pin!(notified);
            // Registered before looking, so a close set in between is not missed.
            notified.as_mut().enable();
            if let Some(frame) = self.state().close.clone() {
                return frame;
            }
            notified.await;
        }
    }
}

/// Sending half, cheap to clone: the hub holds one per session, the connection's reader
/// another (for error replies).
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// Receiving half, owned by the connection's writer.
#[derive(Debug)]
pub struct OutboxRx {
    shared: Arc<Shared>,
}

/// Lets a task other than the writer learn that a close was requested.
#[derive(Debug, Clone)]
pub struct CloseWatch {
    shared: Arc<Shared>,
}

/// The queue was full (the client is too slow) or the connection is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("outgoing queue full or closed")]
pub struct PushError;

impl Outbox {
    pub fn new(capacity: usize) -> (Outbox, OutboxRx) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake_writer: Notify::new(),
            closing: Notify::new(),
            capacity: capacity.max(1),
            senders: AtomicUsize::new(1),
            receiver_alive: AtomicBool::new(true),
        });
        (
            Outbox {
                shared: shared.clone(),
            },
            OutboxRx { shared },
        )
    }

    /// Queues one encoded frame without waiting.
    pub fn push(&self, frame: Utf8Bytes) -> Result<(), PushError> {
        if !self.shared.receiver_alive.load(Ordering::Acquire) {
            return Err(PushError);
        }
        let was_empty = {
            let mut state = self.shared.state();
            if state.frames.len() >= self.shared.capacity {
                return Err(PushError);
            }
            state.frames.push_back(frame);
            state.frames.len() == 1
        };
        // The writer drains everything it finds, so only the first frame needs a wake-up.
        if was_empty {
            self.shared.wake_writer.notify_one();
        }
        Ok(())
    }

    /// Asks the writer to send a close frame and end the connection. Later requests are
    /// ignored so the first, most specific reason reaches the client.
    pub fn close(&self, code: u16, reason: &str) {
        {
            let mut state = self.shared.state();
            if state.close.is_some() {
                return;
            }
            state.close = Some(CloseFrame {
                code: CloseCode::from(code),
                reason: Utf8Bytes::from(reason.to_owned()),
            });
        }
        self.shared.wake_writer.notify_one();
        self.shared.closing.notify_waiters();
    }

    /// Whether a close has been requested.
    pub fn is_closing(&self) -> bool {
        self.shared.state().close.is_some()
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        Outbox {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.wake_writer.notify_one();
        }
    }
}

/// What the writer should do next.
#[derive(Debug)]
pub enum Next {
    /// This many frames were moved into the batch.
    Frames(usize),
    /// Every sender is gone and every frame was taken: end the connection normally.
    Ended,
}

impl OutboxRx {
    /// Moves up to `limit` queued frames into `batch`, waiting for at least one.
    pub async fn recv_many(&self, batch: &mut Vec<Utf8Bytes>, limit: usize) -> Next {
        loop {
            {
                let mut state = self.shared.state();
                if !state.frames.is_empty() {
                    let n = state.frames.len().min(limit.max(1));
                    batch.extend(state.frames.drain(..n));
                    // An idle connection keeps no frame storage.
                    if state.frames.is_empty() {
                        state.frames = VecDeque::new();
                    }
                    return Next::Frames(n);
                }
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                return Next::Ended;
            }
            // A permit stored by a push or a drop after the check above completes this
            // at once, so nothing is missed.
            self.shared.wake_writer.notified().await;
        }
    }

    /// A queued frame, if any (for tests and for flushing before a close).
    pub fn try_recv(&self) -> Option<Utf8Bytes> {
        self.shared.state().frames.pop_front()
    }

    /// Resolves with the close frame once one is requested; never resolves otherwise.
    pub async fn closed(&self) -> CloseFrame {
        self.shared.closed().await
    }

    /// The close requested so far, if any.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        self.shared.state().close.clone()
    }

    /// A handle for the connection's reader, which stops reading new requests once a
    /// close is on its way.
    pub fn close_watch(&self) -> CloseWatch {
        CloseWatch {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for OutboxRx {
    fn drop(&mut self) {
        self.shared.receiver_alive.store(false, Ordering::Release);
        // Frames nobody will send: free them now rather than when the last handle goes.
        self.shared.state().frames = VecDeque::new();
    }
}

impl CloseWatch {
    /// Resolves with the close frame once one is requested; never resolves otherwise.
    pub async fn closed(&self) -> CloseFrame {
        self.shared.closed().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_full_queue_refuses_instead_of_growing() {
        let (outbox, rx) = Outbox::new(2);
        assert_eq!(outbox.push("a".into()), Ok(()));
        assert_eq!(outbox.push("b".into()), Ok(()));
        assert_eq!(outbox.push("c".into()), Err(PushError));
        assert_eq!(rx.try_recv(), Some("a".into()));
        assert_eq!(outbox.push("c".into()), Ok(()));
    }

    #[test]
    fn pushing_fails_once_the_writer_is_gone() {
        let (outbox, rx) = Outbox::new(2);
        let watch = rx.close_watch();
        drop(rx);
        assert_eq!(outbox.push("a".into()), Err(PushError));
        drop(watch);
        assert_eq!(outbox.push("a".into()), Err(PushError));
    }

    #[tokio::test]
    async fn first_close_reason_wins() {
        let (outbox, rx) = Outbox::new(1);
        assert!(!outbox.is_closing());
        outbox.close(4000, "too slow");
        outbox.close(1001, "shutting down");
        let frame = rx.closed().await;
        assert_eq!(u16::from(frame.code), 4000);
        assert_eq!(frame.reason.as_str(), "too slow");
        assert_eq!(rx.close_watch().closed().await, frame);
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_frames_and_ends_when_every_sender_is_gone() {
        let (outbox, rx) = Outbox::new(8);
        let second = outbox.clone();
        let writer = tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut got = Vec::new();
            loop {
                match rx.recv_many(&mut batch, 8).await {
                    Next::Frames(_) => got.append(&mut batch),
                    Next::Ended => return got,
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        outbox.push("a".into()).expect("room");
        second.push("b".into()).expect("room");
        drop(outbox);
        tokio::time::sleep(Duration::from_millis(10)).await;
        second.push("c".into()).expect("room");
        drop(second);
        let got = tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the writer ends")
            .expect("no panic");
        assert_eq!(got, ["a", "b", "c"].map(Utf8Bytes::from));
    }

    #[tokio::test]
    async fn a_close_wakes_every_watcher() {
        let (outbox, rx) = Outbox::new(1);
        let watchers: Vec<_> = (0..3)
            .map(|_| {
                let watch = rx.close_watch();
                tokio::spawn(async move { watch.closed().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        outbox.close(1001, "bye");
        for w in watchers {
            let frame = tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("woken")
                .expect("no panic");
            assert_eq!(u16::from(frame.code), 1001);
        }
    }
}
