//! Per-connection message rate limiting: a token bucket.
//!
//! Bursts up to `burst` messages pass at once (pasting a few lines, a reconnect that
//! re-sends its queue); after that a client gets `per_sec` messages a second. A message
//! over the limit is refused with a hint of when to retry; a client that keeps sending
//! regardless is flooding and is disconnected.

use std::time::{Duration, Instant};

/// Limits for one connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained messages per second.
    pub per_sec: f64,
    /// Messages that may arrive at once.
    pub burst: f64,
}

/// What to do with one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse it; a token is available again after this long.
    Refuse {
        retry_after: Duration,
    },
    /// The client went on sending long after being refused: disconnect it.
    Flooding,
}

/// The bucket of one connection.
#[derive(Debug, Clone)]
pub struct Bucket {
    limit: RateLimit,
    tokens: f64,
    updated: Instant,
    /// Messages refused since the bucket last had a token.
    refused: u32,
}

impl Bucket {
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: limit.burst,
            updated: now,
            refused: 0,
        }
    }

    /// Takes a token for one message arriving at `now`.
    pub fn take(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.per_sec).min(self.limit.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            return Verdict::Allow;
        }
        self.refused += 1;
        // Another burst's worth of refused messages: not a client that backs off.
        if f64::from(self.refused) > self.limit.burst.max(1.0) {
            return Verdict::Flooding;
        }
        let missing = 1.0 - self.tokens;
        Verdict::Refuse {
            retry_after: Duration::from_secs_f64(missing / self.limit.per_sec.max(f64::EPSILON)),
        }
    }
}

impl Bucket {
    /// How long until the next token, as of the last `take`.
    pub fn next_token(&self) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.limit.per_sec.max(f64::EPSILON))
    }

    /// Whether the bucket has refilled to its burst by `now`: it is then the same as a
    /// new one, and whoever keeps many of them may forget it.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens + elapsed * self.limit.per_sec >= self.limit.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_sec: 10.0,
        burst: 5.0,
    };

    #[test]
    fn a_burst_passes_then_the_rate_applies() {
        let t0 = Instant::now();
        let mut b = Bucket::new(LIMIT, t0);
        for _ in 0..5 {
            assert_eq!(b.take(t0), Verdict::Allow);
        }
        match b.take(t0) {
            Verdict::Refuse { retry_after } => {
                assert_eq!(retry_after, Duration::from_millis(100));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // One token comes back every 100 ms.
        assert_eq!(b.take(t0 + Duration::from_millis(100)), Verdict::Allow);
        assert!(matches!(
            b.take(t0 + Duration::from_millis(150)),
            Verdict::Refuse { .. }
        ));
        // A pause refills the burst, never beyond it.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(b.take(later), Verdict::Allow);
        }
        assert!(matches!(b.take(later), Verdict::Refuse { .. }));
    }

    #[test]
    fn sending_on_after_refusals_is_flooding() {
        let t0 = Instant::now();
        let mut b = Bucket::new(LIMIT, t0);
        for _ in 0..5 {
            b.take(t0);
        }
        for _ in 0..5 {
            assert!(matches!(b.take(t0), Verdict::Refuse { .. }));
        }
        assert_eq!(b.take(t0), Verdict::Flooding);
    }

    #[test]
    fn a_client_that_backs_off_is_never_flooding() {
        let t0 = Instant::now();
        let mut b = Bucket::new(LIMIT, t0);
        let mut now = t0;
        for _ in 0..1000 {
            // Ten a second, exactly the sustained rate, after an initial refusal.
            now += Duration::from_millis(100);
            assert_ne!(b.take(now), Verdict::Flooding);
        }
    }
}
