//! Counters the cache keeps for the router's Prometheus endpoint, exposed as plain data
//! ([`CacheMetrics`]); the router renders the text format.

use crate::{DeviceId, ModelState};

/// Upper bounds (seconds) of the load-duration histogram buckets; a last `+Inf` bucket follows.
pub const LOAD_SECONDS_BUCKETS: [f64; 9] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Why a model was unloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvictionReason {
    /// Made room for another load, least recently used first.
    Lru,
    /// Idle past its keep-alive.
    Expired,
    /// An explicit unload call.
    Unload,
    /// Keep-alive zero: unloaded when its last lease dropped.
    KeepAliveZero,
}

impl EvictionReason {
    /// Every reason, in a fixed order.
    pub const ALL: [EvictionReason; 4] = [
        EvictionReason::Lru,
        EvictionReason::Expired,
        EvictionReason::Unload,
        EvictionReason::KeepAliveZero,
    ];

    /// `lru`, `expired`, `unload` or `keep_alive_zero` (the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            EvictionReason::Lru => "lru",
            EvictionReason::Expired => "expired",
            EvictionReason::Unload => "unload",
            EvictionReason::KeepAliveZero => "keep_alive_zero",
        }
    }

    fn index(self) -> usize {
        match self {
            EvictionReason::Lru => 0,
            EvictionReason::Expired => 1,
            EvictionReason::Unload => 2,
            EvictionReason::KeepAliveZero => 3,
        }
    }
}

/// Load durations in seconds, bucketed by [`LOAD_SECONDS_BUCKETS`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    pub counts: [u64; 10],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub(crate) fn observe(&mut self, seconds: f64) {
        let bucket = LOAD_SECONDS_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(LOAD_SECONDS_BUCKETS.len());
        if let Some(c) = self.counts.get_mut(bucket) {
            *c += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }

    /// `(le, cumulative count)` pairs as Prometheus writes them, ending with `+Inf`.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let bounds = LOAD_SECONDS_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let mut total = 0;
        bounds
            .zip(self.counts)
            .map(|(le, c)| {
                total += c;
                (le, total)
            })
            .collect()
    }
}

/// Unloads of one model by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvictionCounts([u64; 4]);

impl EvictionCounts {
    pub fn get(&self, reason: EvictionReason) -> u64 {
        self.0[reason.index()]
    }

    pub(crate) fn add(&mut self, reason: EvictionReason) {
        self.0[reason.index()] += 1;
    }

    /// `(reason, count)` for every reason.
    pub fn iter(&self) -> impl Iterator<Item = (EvictionReason, u64)> + '_ {
        EvictionReason::ALL.into_iter().map(|r| (r, self.get(r)))
    }
}

/// Counters of one model since the cache started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelCounters {
    /// `loads_total{result="success"}`.
    pub loads_success: u64,
    /// `loads_total{result="failure"}` (load or estimate failed).
    pub loads_failure: u64,
    /// Durations of successful loads.
    pub load_seconds: Histogram,
    /// `evictions_total{reason=…}`.
    pub evictions: EvictionCounts,
}

/// One model's metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMetrics {
    pub model: String,
    pub state: ModelState,
    pub counters: ModelCounters,
    /// Callers waiting for its load now.
    pub waiters: usize,
}

/// One device's memory metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMetrics {
    pub device: DeviceId,
    /// `None` when the device has no byte limit.
    pub budget: Option<u64>,
    pub used: u64,
}

/// A snapshot of every counter and gauge, models sorted by id, devices by id.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheMetrics {
    pub models: Vec<ModelMetrics>,
    pub devices: Vec<DeviceMetrics>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets() {
        let mut h = Histogram::default();
        for s in [0.05, 0.1, 0.3, 7.0, 100.0] {
            h.observe(s);
        }
        assert_eq!(h.count, 5);
        assert!((h.sum - 107.45).abs() < 1e-9);
        let cum = h.cumulative();
        assert_eq!(cum.len(), 10);
        assert_eq!(cum[0], (0.1, 2));
        assert_eq!(cum[2], (0.5, 3));
        assert_eq!(cum[6], (10.0, 4));
        assert_eq!(cum[8], (60.0, 4));
        assert_eq!(cum[9].1, 5);
        assert!(cum[9].0.is_infinite());
    }

    #[test]
    fn eviction_counts() {
        let mut e = EvictionCounts::default();
        e.add(EvictionReason::Lru);
        e.add(EvictionReason::Lru);
        e.add(EvictionReason::KeepAliveZero);
        assert_eq!(e.get(EvictionReason::Lru), 2);
        let labels: Vec<_> = e.iter().map(|(r, n)| (r.as_str(), n)).collect();
        assert_eq!(
            labels,
            [
                ("lru", 2),
                ("expired", 0),
                ("unload", 0),
                ("keep_alive_zero", 1)
            ]
        );
    }
}
