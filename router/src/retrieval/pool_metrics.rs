//! The database pools' families on `/metrics`: connections (open, idle, max), waiting callers,
//! checkouts, exhaustion and errors, statements, and the checkout-wait and statement latency
//! histograms, one series per pool (`pool="default"` for `[database]`).

use std::collections::BTreeMap;

use nfai_inference::histogram::HistogramSnapshot;
use nfai_retrieval::pg::{LATENCY_BUCKETS_SECONDS, PgPool, PgPoolSnapshot};

use crate::metrics::{Collector, Exposition};

/// Writes the pool families.
#[derive(Debug)]
pub struct PoolMetrics(pub BTreeMap<String, PgPool>);

/// A histogram family: name, help and the snapshot it reads.
type HistogramFamily = (
    &'static str,
    &'static str,
    fn(&PgPoolSnapshot) -> HistogramSnapshot,
);

type Gauge = (
    &'static str,
    &'static str,
    &'static str,
    fn(&PgPoolSnapshot) -> u64,
);

const FAMILIES: [Gauge; 9] = [
    (
        "nfai_db_pool_max_connections",
        "gauge",
        "Connections a pool may open.",
        |s| s.max_size as u64,
    ),
    (
        "nfai_db_pool_connections",
        "gauge",
        "Connections a pool has open.",
        |s| s.size as u64,
    ),
    (
        "nfai_db_pool_idle_connections",
        "gauge",
        "Open connections idle in a pool.",
        |s| s.available as u64,
    ),
    (
        "nfai_db_pool_waiting",
        "gauge",
        "Callers waiting for a pooled connection.",
        |s| s.waiting as u64,
    ),
    (
        "nfai_db_pool_checkouts_total",
        "counter",
        "Connections handed out by a pool.",
        |s| s.checkouts,
    ),
    (
        "nfai_db_pool_exhausted_total",
        "counter",
        "Checkouts that gave up after the pool's wait timeout.",
        |s| s.checkout_timeouts,
    ),
    (
        "nfai_db_pool_checkout_errors_total",
        "counter",
        "Checkouts that failed to open or recycle a connection.",
        |s| s.checkout_errors,
    ),
    (
        "nfai_db_queries_total",
        "counter",
        "Statements run through a pool.",
        |s| s.queries,
    ),
    (
        "nfai_db_query_errors_total",
        "counter",
        "Statements that failed.",
        |s| s.query_errors,
    ),
];

/// The pool's per-bucket counts as the exposition's cumulative buckets.
fn cumulative(h: &nfai_retrieval::pg::HistogramSnapshot) -> HistogramSnapshot {
    let mut acc = 0;
    let buckets = h
        .counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            acc += c;
            let le = LATENCY_BUCKETS_SECONDS
                .get(i)
                .copied()
                .unwrap_or(f64::INFINITY);
            (le, acc)
        })
        .collect();
    HistogramSnapshot {
        buckets,
        sum: h.sum_seconds,
        count: acc,
    }
}

impl Collector for PoolMetrics {
    fn collect(&self, out: &mut Exposition) {
        let snaps: Vec<(&str, PgPoolSnapshot)> = self
            .0
            .iter()
            .map(|(l, p)| (l.as_str(), p.snapshot()))
            .collect();
        for (name, kind, help, value) in FAMILIES {
            out.family(name, kind, help);
            for (label, s) in &snaps {
                out.sample(name, &[("pool", label)], value(s) as f64);
            }
        }
        let histograms: [HistogramFamily; 2] = [
            (
                "nfai_db_pool_wait_seconds",
                "Time spent waiting for a pooled connection.",
                |s| cumulative(&s.checkout_wait),
            ),
            (
                "nfai_db_query_duration_seconds",
                "Statement latency through a pool, checkout excluded.",
                |s| cumulative(&s.query_latency),
            ),
        ];
        for (name, help, read) in histograms {
            out.family(name, "histogram", help);
            for (label, s) in &snaps {
                out.histogram(name, &[("pool", label)], &read(s));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_bucket_counts_become_cumulative_with_an_inf_bucket() {
        let mut counts = vec![0; LATENCY_BUCKETS_SECONDS.len() + 1];
        counts[0] = 2;
        counts[3] = 1;
        counts[LATENCY_BUCKETS_SECONDS.len()] = 1;
        let h = cumulative(&nfai_retrieval::pg::HistogramSnapshot {
            counts,
            sum_seconds: 3.5,
            count: 4,
        });
        assert_eq!(h.buckets[0], (LATENCY_BUCKETS_SECONDS[0], 2));
        assert_eq!(h.buckets[3].1, 3);
        assert_eq!(h.buckets.last(), Some(&(f64::INFINITY, 4)));
        assert_eq!(h.count, 4);
    }
}
