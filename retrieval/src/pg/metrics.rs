//! Pool and query metrics: lock-free counters and fixed-bucket latency histograms, read as a
//! [`PgPoolSnapshot`] that the router exports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (the last bucket is +Inf).
pub const LATENCY_BUCKETS_SECONDS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A latency histogram with the buckets of [`LATENCY_BUCKETS_SECONDS`] plus +Inf.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS_SECONDS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS_SECONDS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

/// A histogram read at one moment: per-bucket counts (not cumulative; the last is +Inf).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub counts: Vec<u64>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl HistogramSnapshot {
    /// The upper bound of the bucket holding quantile `q` (0..=1); `None` when empty, +Inf as
    /// `f64::INFINITY`.
    pub fn quantile_upper_bound(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let target = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Some(
                    LATENCY_BUCKETS_SECONDS
                        .get(i)
                        .copied()
                        .unwrap_or(f64::INFINITY),
                );
            }
        }
        Some(f64::INFINITY)
    }
}

/// The pool's counters, shared by every checkout and query.
#[derive(Debug, Default)]
pub struct PgMetrics {
    pub(crate) checkouts: AtomicU64,
    pub(crate) checkout_timeouts: AtomicU64,
    pub(crate) checkout_errors: AtomicU64,
    pub(crate) queries: AtomicU64,
    pub(crate) query_errors: AtomicU64,
    pub(crate) checkout_wait: Histogram,
    pub(crate) query_latency: Histogram,
}

/// The pool's state and counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct PgPoolSnapshot {
    /// Configured maximum connections.
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Open connections idle in the pool.
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// Connections handed out.
    pub checkouts: u64,
    /// Checkouts that gave up after the wait timeout (pool exhausted).
    pub checkout_timeouts: u64,
    /// Checkouts that failed to open or recycle a connection.
    pub checkout_errors: u64,
    /// Statements run.
    pub queries: u64,
    /// Statements that failed.
    pub query_errors: u64,
    /// Time spent waiting for a connection.
    pub checkout_wait: HistogramSnapshot,
    /// Statement latency, checkout excluded.
    pub query_latency: HistogramSnapshot,
    /// `prepared`, `unnamed` or `transaction`.
    pub statement_mode: &'static str,
}

impl PgMetrics {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn load(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_buckets_and_quantiles_follow() {
        let h = Histogram::default();
        for _ in 0..9 {
            h.observe(Duration::from_micros(300));
        }
        h.observe(Duration::from_secs(3));
        let s = h.snapshot();
        assert_eq!(s.count, 10);
        assert_eq!(s.counts[1], 9);
        assert_eq!(s.counts[LATENCY_BUCKETS_SECONDS.len()], 1);
        assert_eq!(s.quantile_upper_bound(0.5), Some(0.000_5));
        assert_eq!(s.quantile_upper_bound(1.0), Some(f64::INFINITY));
        assert!((s.sum_seconds - 3.0027).abs() < 1e-9);
    }
}
