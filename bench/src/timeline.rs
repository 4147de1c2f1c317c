//! The shape in time of a run that measures over a period: everyone starts together,
//! a warm-up that is not counted, then the measured period.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    /// When sending starts; also the zero of timestamps carried in messages.
    pub start: Instant,
    pub measure_from: Instant,
    pub until: Instant,
}

impl Timeline {
    /// Starts now: `warmup_secs` not counted, then `duration_secs` measured.
    pub fn from_now(warmup_secs: u64, duration_secs: u64) -> Self {
        let start = Instant::now();
        let measure_from = start + Duration::from_secs(warmup_secs);
        Timeline {
            start,
            measure_from,
            until: measure_from + Duration::from_secs(duration_secs),
        }
    }

    /// Whether something that happened `at` counts.
    pub fn measured(&self, at: Instant) -> bool {
        at >= self.measure_from && at < self.until
    }
}
