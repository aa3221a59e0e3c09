//! The agent's own instruments: lock-free counters and histograms, read by
//! the metrics endpoint. Names are a contract, written once here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `statuspage_agent_schedule_lag_seconds`: actual start minus slot.
pub const SCHEDULE_LAG: &str = "statuspage_agent_schedule_lag_seconds";
/// `statuspage_agent_skipped_runs_total`: slots skipped because the previous run overran.
pub const SKIPPED_RUNS: &str = "statuspage_agent_skipped_runs_total";
/// `statuspage_agent_runs_total`: probes run.
pub const RUNS: &str = "statuspage_agent_runs_total";

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Subtracts `n` (for gauges kept in the same cell).
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A Prometheus-style histogram of durations, in seconds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// Bucket bounds for schedule lag: fine below 10 ms, where the goal is.
pub const LAG_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Histogram {
    /// A histogram with these upper bounds (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// How many observations there were.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Cumulative counts per bound, as Prometheus exposes them (`le`).
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.bounds
            .iter()
            .zip(&self.buckets)
            .map(|(b, c)| {
                total += c.load(Ordering::Relaxed);
                (*b, total)
            })
            .collect()
    }

    /// The sum of all observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// The upper bound of the bucket holding quantile `q` (0..1); an estimate
    /// that is never below the true value by more than one bucket.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q * n as f64).ceil() as u64;
        self.cumulative()
            .into_iter()
            .find(|(_, c)| *c >= rank)
            .map(|(b, _)| b)
            .or(Some(f64::INFINITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_quantiles_bounded() {
        let h = Histogram::new(LAG_BUCKETS);
        for ms in [0, 1, 1, 2, 3, 7, 30, 2000] {
            h.observe(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 8);
        let c = h.cumulative();
        assert_eq!(c[0], (0.0005, 1));
        assert_eq!(c[1], (0.001, 3));
        assert_eq!(c.last().unwrap().1, 8);
        assert_eq!(h.quantile_bound(0.5), Some(0.0025));
        assert_eq!(h.quantile_bound(0.99), Some(2.5));
        assert!((h.sum_seconds() - 2.044).abs() < 1e-9);
    }
}
