//! When to try again after a failure: the socket's reconnects and the first `/api/me`
//! both back off the same way, so a server restart does not meet every tab at once.

/// First retry delay; doubles per failed attempt up to [`MAX_BACKOFF_MS`].
const BASE_BACKOFF_MS: f64 = 500.0;
const MAX_BACKOFF_MS: f64 = 15_000.0;

/// Exponential backoff with jitter: a random delay between a quarter of the doubled
/// ceiling and the ceiling, so clients dropped together by a restart do not all come back
/// in the same instant, and none retries in a tight loop.
pub fn backoff_ms(failures: u32, random: f64) -> u32 {
    let ceiling = (BASE_BACKOFF_MS * 2f64.powi(failures.min(16) as i32 - 1)).min(MAX_BACKOFF_MS);
    // Never less than a quarter of the ceiling, so retries do not spin.
    (ceiling * (0.25 + 0.75 * random.clamp(0.0, 1.0))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_ceiling_with_jitter() {
        assert_eq!(backoff_ms(1, 1.0), 500);
        assert_eq!(backoff_ms(1, 0.0), 125);
        assert_eq!(backoff_ms(2, 1.0), 1000);
        assert_eq!(backoff_ms(3, 1.0), 2000);
        assert_eq!(backoff_ms(10, 1.0), 15_000);
        assert_eq!(backoff_ms(u32::MAX, 1.0), 15_000);
        assert!(backoff_ms(4, 0.5) < backoff_ms(4, 0.9));
    }
}
