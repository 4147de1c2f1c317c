//! A deadline for a whole request body.
//!
//! hyper bounds the time to send a request head (`--handshake-timeout-secs`) but not the
//! body after it: a client that announces a body and sends it a byte every ten seconds
//! would hold its connection, and a handler waiting for it, for as long as it likes.
//! [`DeadlineBody`] wraps the body a handler reads: once the deadline (counted from the
//! moment the head arrived) passes before the body's end, reading it fails, and
//! [`Expired`] tells the accept loop to answer 408 and close the connection.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

/// Whether a request's body ran out of time; shared by the body and the accept loop.
#[derive(Debug, Clone, Default)]
pub struct Expired(Arc<AtomicBool>);

impl Expired {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The error a body that ran out of time yields to whoever reads it.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within its deadline")]
pub struct TooSlow;

/// A request body that fails once `deadline` passes before its end.
pub struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Made on the first read that has to wait: most bodies are empty or already
    /// buffered, and need no timer.
    timer: Option<Pin<Box<Sleep>>>,
    expired: Expired,
}

impl DeadlineBody {
    pub fn new(inner: Incoming, deadline: Instant) -> (Self, Expired) {
        let expired = Expired::default();
        let body = Self {
            inner,
            deadline,
            timer: None,
            expired: expired.clone(),
        };
        (body, expired)
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.expired.get() {
            return Poll::Ready(Some(Err(TooSlow.into())));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired.0.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(TooSlow.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
