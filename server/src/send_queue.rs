//! The outgoing side of one connection, as seen by everything that is not the socket.
//!
//! - Frames go through a *bounded* queue. Pushing never waits: a hub that waited on one
//!   slow reader would stall the whole chat. A full queue while the connection's socket
//!   is full too means the client is not keeping up, and it is disconnected instead of
//!   being buffered without bound.
//! - A full queue while the socket still takes everything is the server's own burst, not
//!   a slow client: say, a few hundred messages committed together after the disk
//!   paused, pushed to every recipient before any connection ran. Those pushes are let
//!   through up to [`BURST_ALLOWANCE`] times the capacity, so a pause of the server's
//!   never disconnects the clients that keep up.
//! - The queue is bounded in bytes as well as in frames: one reply (a `replay` page, a
//!   `joined` with history) can be hundreds of KiB, so a count of frames alone would let a
//!   client that asks for replays and never reads hold gigabytes. The bytes counted are
//!   those queued *and* those the connection has taken but not yet written to its
//!   socket ([`SendQueueRx::written`]), the same two states as frames, with the same
//!   burst allowance while the socket keeps up. A frame counts its full length for each
//!   connection even when shared with other recipients: the budget bounds what one slow
//!   client can make the server hold, not the allocator's view of it.
//! - A close request has a slot of its own, which always has room, so a client can be
//!   told why it is being dropped even when its queue is full. The first reason set
//!   wins.
//!
//! One small shared cell (a mutex-guarded `VecDeque` and one `AtomicWaker`) rather than
//! a tokio `mpsc` channel plus a `watch`: an idle connection's queue then holds no frame
//! storage at all (the channel kept a 32-slot block and cache-padded counters per
//! connection: docs/PERFORMANCE.md, step 5), and a push is one uncontended lock, the
//! hub's hot path when it fans a message out to thousands of connections. The
//! connection polls it from its single task ([`SendQueueRx::poll_take`],
//! [`SendQueueRx::poll_close`]), which is why it is a waker and not a `Notify`.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio_tungstenite::tungstenite::{
    Utf8Bytes,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

/// How many times its capacity a queue may hold while its connection's socket still
/// takes every write (see the module documentation). Bounds memory all the same: the
/// frames are shared with the other recipients, so a full allowance costs a pointer per
/// frame.
pub const BURST_ALLOWANCE: usize = 8;

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Set by the connection while its socket refuses more bytes (the peer is not
    /// reading): only then does a full queue mean the client is too slow.
    socket_full: AtomicBool,
    /// Wakes the connection: frames queued, a close requested, or the last sender gone.
    waker: AtomicWaker,
    capacity: usize,
    /// Bytes a connection may have queued or pending while its socket is full.
    byte_budget: usize,
    /// Bytes pushed and not yet written to the socket (see the module documentation).
    /// Raised under the state lock by pushes, lowered without it by the connection, so a
    /// push's check can only err on the safe side.
    bytes: AtomicUsize,
    /// Live [`SendQueue`] clones; at zero the writer's queue ends once drained.
    senders: AtomicUsize,
    /// Cleared when the writer's [`SendQueueRx`] is dropped: nobody will send any more.
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
}

/// Sending half, cheap to clone: the hub holds one per connection, the connection another
/// (to ask for its own close on bad input).
#[derive(Debug)]
pub struct SendQueue {
    shared: Arc<Shared>,
}

/// Receiving half, owned by the connection.
#[derive(Debug)]
pub struct SendQueueRx {
    shared: Arc<Shared>,
}

/// The queue was full (the client is too slow) or the connection is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("outgoing queue full or closed")]
pub struct PushError;

/// How much one connection's queue may hold while its socket is full: frames and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub frames: usize,
    pub bytes: usize,
}

impl SendQueue {
    pub fn new(limits: QueueLimits) -> (SendQueue, SendQueueRx) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            socket_full: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            capacity: limits.frames.max(1),
            byte_budget: limits.bytes.max(1),
            bytes: AtomicUsize::new(0),
            senders: AtomicUsize::new(1),
            receiver_alive: AtomicBool::new(true),
        });
        (
            SendQueue {
                shared: shared.clone(),
            },
            SendQueueRx { shared },
        )
    }

    /// Queues one encoded frame without waiting, and says how many frames the queue
    /// holds now (for `/metrics`: it is known under the lock anyway). Refused when the
    /// queue is full (in frames or in bytes) and the socket is too, or past the burst
    /// allowance.
    pub fn push(&self, frame: Utf8Bytes) -> Result<usize, PushError> {
        let shared = &*self.shared;
        if !shared.receiver_alive.load(Ordering::Acquire) {
            return Err(PushError);
        }
        let depth = {
            let mut state = shared.state();
            let over = |used: usize, limit: usize| {
                used >= limit
                    && (shared.socket_full.load(Ordering::Relaxed)
                        || used >= limit.saturating_mul(BURST_ALLOWANCE))
            };
            let bytes = shared.bytes.load(Ordering::Acquire) + frame.len();
            if over(state.frames.len(), shared.capacity) || over(bytes, shared.byte_budget + 1) {
                return Err(PushError);
            }
            shared.bytes.fetch_add(frame.len(), Ordering::AcqRel);
            state.frames.push_back(frame);
            state.frames.len()
        };
        // The connection takes everything it finds, so only the first frame needs a
        // wake-up.
        if depth == 1 {
            self.shared.waker.wake();
        }
        Ok(depth)
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
        self.shared.waker.wake();
    }

    /// Whether a close has been requested.
    pub fn is_closing(&self) -> bool {
        self.shared.state().close.is_some()
    }
}

impl Clone for SendQueue {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        SendQueue {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for SendQueue {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.waker.wake();
        }
    }
}

/// What [`SendQueueRx::poll_take`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Frames were moved into the caller's queue.
    Frames,
    /// Every sender is gone and every frame was taken: end the connection normally.
    Ended,
}

impl SendQueueRx {
    /// Moves every queued frame to the back of `into`, or registers the task to be woken
    /// when there are some. Swapping queues rather than moving frames one by one: while
    /// the connection writes one queue, the hub fills the other, and neither allocates
    /// in the steady state.
    pub fn poll_take(&self, cx: &mut Context<'_>, into: &mut VecDeque<Utf8Bytes>) -> Poll<Next> {
        // Registered before looking, so a push between the look and the return wakes us.
        self.shared.waker.register(cx.waker());
        let mut state = self.shared.state();
        if !state.frames.is_empty() {
            if into.is_empty() {
                std::mem::swap(&mut state.frames, into);
            } else {
                into.extend(state.frames.drain(..));
            }
            return Poll::Ready(Next::Frames);
        }
        // Idle: keep no frame storage on this side.
        if state.frames.capacity() > 0 {
            state.frames = VecDeque::new();
        }
        drop(state);
        if self.shared.senders.load(Ordering::Acquire) == 0 {
            return Poll::Ready(Next::Ended);
        }
        Poll::Pending
    }

    /// The close frame once one is requested; registers the task otherwise.
    pub fn poll_close(&self, cx: &mut Context<'_>) -> Poll<CloseFrame> {
        self.shared.waker.register(cx.waker());
        match self.shared.state().close.clone() {
            Some(frame) => Poll::Ready(frame),
            None => Poll::Pending,
        }
    }

    /// Tells the senders that a frame of `len` bytes has left for the socket, freeing its
    /// share of the byte budget.
    pub fn written(&self, len: usize) {
        self.shared.bytes.fetch_sub(len, Ordering::AcqRel);
    }

    /// Bytes queued or taken and not yet written (for tests).
    pub fn bytes(&self) -> usize {
        self.shared.bytes.load(Ordering::Acquire)
    }

    /// Tells the senders whether the socket refuses more bytes right now.
    pub fn set_socket_full(&self, full: bool) {
        self.shared.socket_full.store(full, Ordering::Relaxed);
    }

    /// A queued frame, if any (for flushing before a close). It still counts against
    /// the byte budget until [`SendQueueRx::written`].
    pub fn try_recv(&self) -> Option<Utf8Bytes> {
        self.shared.state().frames.pop_front()
    }

    /// The close requested so far, if any.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        self.shared.state().close.clone()
    }
}

impl Drop for SendQueueRx {
    fn drop(&mut self) {
        self.shared.receiver_alive.store(false, Ordering::Release);
        // Frames nobody will send: free them now rather than when the last clone goes.
        self.shared.state().frames = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Limits in frames only: a budget in bytes no test frame comes near.
    fn frames(frames: usize) -> QueueLimits {
        QueueLimits {
            frames,
            bytes: 1 << 20,
        }
    }

    #[test]
    fn a_full_queue_refuses_instead_of_growing_when_the_socket_is_full_too() {
        let (queue, rx) = SendQueue::new(frames(2));
        rx.set_socket_full(true);
        assert_eq!(queue.push("a".into()), Ok(1));
        assert_eq!(queue.push("b".into()), Ok(2));
        assert_eq!(queue.push("c".into()), Err(PushError));
        assert_eq!(rx.try_recv(), Some("a".into()));
        assert_eq!(queue.push("c".into()), Ok(2), "the depth after the push");
    }

    #[test]
    fn a_burst_to_a_connection_that_keeps_up_is_let_through_up_to_the_allowance() {
        let (queue, rx) = SendQueue::new(frames(2));
        let allowance = 2 * BURST_ALLOWANCE;
        for i in 0..allowance {
            assert_eq!(queue.push(i.to_string().into()), Ok(i + 1), "frame {i}");
        }
        assert_eq!(queue.push("over".into()), Err(PushError));
        // The socket fills up while the burst is written: now the capacity holds.
        let mut taken = VecDeque::new();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_take(&mut cx, &mut taken), Poll::Ready(Next::Frames));
        assert_eq!(taken.len(), allowance);
        rx.set_socket_full(true);
        assert_eq!(queue.push("a".into()), Ok(1));
        assert_eq!(queue.push("b".into()), Ok(2));
        assert_eq!(queue.push("c".into()), Err(PushError));
    }

    #[test]
    fn bytes_count_until_written_and_bound_the_queue_when_the_socket_is_full() {
        let (queue, rx) = SendQueue::new(QueueLimits {
            frames: 1024,
            bytes: 100,
        });
        let frame = || Utf8Bytes::from("x".repeat(60));
        rx.set_socket_full(true);
        assert_eq!(queue.push(frame()), Ok(1));
        assert_eq!(queue.push(frame()), Err(PushError), "120 bytes > 100");
        // Taken by the connection but not yet on the socket: still counted.
        let mut taken = VecDeque::new();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_take(&mut cx, &mut taken), Poll::Ready(Next::Frames));
        assert_eq!(rx.bytes(), 60);
        assert_eq!(queue.push(frame()), Err(PushError));
        rx.written(60);
        assert_eq!(queue.push(frame()), Ok(1));
        // While the socket keeps up, a burst may go past the budget up to the allowance.
        rx.set_socket_full(false);
        let mut pushed = 1;
        while queue.push(frame()).is_ok() {
            pushed += 1;
        }
        let allowance = 100 * BURST_ALLOWANCE;
        assert!(
            pushed * 60 <= allowance + BURST_ALLOWANCE && (pushed + 1) * 60 > allowance,
            "{pushed} frames of 60 bytes for an allowance of {allowance}"
        );
    }

    #[test]
    fn pushing_fails_once_the_writer_is_gone() {
        let (queue, rx) = SendQueue::new(frames(2));
        drop(rx);
        assert_eq!(queue.push("a".into()), Err(PushError));
    }

    #[test]
    fn first_close_reason_wins() {
        let (queue, rx) = SendQueue::new(frames(1));
        assert!(!queue.is_closing());
        queue.close(4000, "too slow");
        queue.close(1001, "shutting down");
        let frame = rx.close_frame().expect("a close");
        assert_eq!(u16::from(frame.code), 4000);
        assert_eq!(frame.reason.as_str(), "too slow");
    }

    #[tokio::test]
    async fn a_waiting_connection_wakes_for_frames_and_a_close_and_ends_when_every_sender_is_gone()
    {
        let (queue, rx) = SendQueue::new(frames(8));
        let second = queue.clone();
        let connection = tokio::spawn(async move {
            let mut got = VecDeque::new();
            loop {
                match std::future::poll_fn(|cx| rx.poll_take(cx, &mut got)).await {
                    Next::Frames => {}
                    Next::Ended => return got,
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        queue.push("a".into()).expect("room");
        second.push("b".into()).expect("room");
        drop(queue);
        tokio::time::sleep(Duration::from_millis(10)).await;
        second.push("c".into()).expect("room");
        drop(second);
        let got = tokio::time::timeout(Duration::from_secs(5), connection)
            .await
            .expect("the connection ends")
            .expect("no panic");
        assert_eq!(Vec::from(got), ["a", "b", "c"].map(Utf8Bytes::from));

        let (queue, rx) = SendQueue::new(frames(1));
        let waiting =
            tokio::spawn(async move { std::future::poll_fn(|cx| rx.poll_close(cx)).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        queue.close(1001, "bye");
        let frame = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("no panic");
        assert_eq!(u16::from(frame.code), 1001);
    }
}
