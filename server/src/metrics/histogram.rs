//! Histograms with fixed buckets, counted in place.
//!
//! Why not the exporter's own: `metrics-exporter-prometheus` keeps every observation (a
//! value and its timestamp) until a scrape or its upkeep folds them into buckets. The
//! hub observes twice per fan-out, so between two folds a busy server held megabytes of
//! samples, and the allocator kept them afterwards (docs/PERFORMANCE.md measured it).
//! Here an observation adds to one bucket's count and to the sum: memory is fixed by the
//! number of buckets whatever the rate, and a scrape reads the counts as they are.
//!
//! A scrape reads each count on its own, so one taken during an observation may see its
//! bucket but not yet its sum; the next scrape sees both. `_count` is the sum of the
//! buckets, so the cumulative buckets always rise and end at `_count`, as Prometheus
//! expects.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
};

use metrics::HistogramFn;

/// One histogram: its name, help text, upper bounds and counts.
#[derive(Debug)]
pub struct Buckets {
    name: &'static str,
    help: &'static str,
    /// Upper bounds (`le`), rising.
    bounds: &'static [f64],
    /// One count per bound, then one for `+Inf`: observations in that bucket alone (the
    /// scrape makes them cumulative).
    counts: Box<[AtomicU64]>,
    /// The sum of the observations, as `f64` bits.
    sum: AtomicU64,
}

impl Buckets {
    pub fn new(name: &'static str, help: &'static str, bounds: &'static [f64]) -> Buckets {
        Buckets {
            name,
            help,
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Appends this histogram to `out` in the Prometheus text format (0.0.4).
    pub fn render(&self, out: &mut String) {
        let name = self.name;
        let help = self.help.replace('\\', r"\\").replace('\n', r"\n");
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut seen = 0u64;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(le) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {seen}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {seen}");
                }
            }
        }
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {seen}");
        out.push('\n');
    }
}

impl HistogramFn for Buckets {
    fn record(&self, value: f64) {
        // A NaN belongs in no bucket and would poison the sum.
        if value.is_nan() {
            return;
        }
        // The first bucket whose bound holds it; past the last bound, `+Inf`.
        let at = self.bounds.partition_point(|le| *le < value);
        if let Some(count) = self.counts.get(at) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        // Observations here come from one thread at a time (the hub, the writer), so
        // this loop almost never goes round twice.
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them_and_render_cumulatively() {
        let h = Buckets::new("confab_test_frames", "Frames.", &[1.0, 2.0, 4.0]);
        for v in [0.0, 1.0, 1.5, 2.0, 4.0, 9.0, f64::NAN] {
            h.record(v);
        }
        let mut text = String::new();
        h.render(&mut text);
        assert_eq!(
            text,
            "# HELP confab_test_frames Frames.\n\
             # TYPE confab_test_frames histogram\n\
             confab_test_frames_bucket{le=\"1\"} 2\n\
             confab_test_frames_bucket{le=\"2\"} 4\n\
             confab_test_frames_bucket{le=\"4\"} 5\n\
             confab_test_frames_bucket{le=\"+Inf\"} 6\n\
             confab_test_frames_sum 17.5\n\
             confab_test_frames_count 6\n\n"
        );
    }

    #[test]
    fn small_bounds_and_sums_render_as_decimals() {
        let h = Buckets::new("confab_test_seconds", "Seconds.", &[0.0001, 0.5]);
        h.record(0.00005);
        h.record(0.25);
        let mut text = String::new();
        h.render(&mut text);
        assert!(
            text.contains("confab_test_seconds_bucket{le=\"0.0001\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("confab_test_seconds_sum 0.25005\n"), "{text}");
    }
}
