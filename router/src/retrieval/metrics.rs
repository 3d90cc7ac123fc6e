//! The retrieval service's families on `/metrics`: cache hits, misses, entries and bytes of
//! the query-embedding and search-result caches, and ingestion runs.

use nfai_retrieval::service::{CacheStats, RetrievalService};

use crate::metrics::{Collector, Exposition};

/// A cache family: name, type, help and the value it reads from a cache's counters.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CacheStats) -> u64,
);

/// Writes the retrieval families.
#[derive(Debug)]
pub struct RetrievalMetrics(pub RetrievalService);

impl Collector for RetrievalMetrics {
    fn collect(&self, out: &mut Exposition) {
        let stats = self.0.cache_stats();
        let families: [Family; 4] = [
            (
                "nfai_retrieval_cache_hits_total",
                "counter",
                "Retrieval cache lookups that found an entry.",
                |s| s.hits,
            ),
            (
                "nfai_retrieval_cache_misses_total",
                "counter",
                "Retrieval cache lookups that found nothing.",
                |s| s.misses,
            ),
            (
                "nfai_retrieval_cache_entries",
                "gauge",
                "Entries held by each retrieval cache.",
                |s| s.entries,
            ),
            (
                "nfai_retrieval_cache_bytes",
                "gauge",
                "Bytes held by each retrieval cache (by its weigher).",
                |s| s.bytes,
            ),
        ];
        for (name, kind, help, value) in families {
            out.family(name, kind, help);
            for s in &stats {
                out.sample(name, &[("cache", s.name)], value(s) as f64);
            }
        }
        out.family(
            "nfai_retrieval_ingest_runs_total",
            "counter",
            "Ingestion runs of vector store files started.",
        );
        out.sample(
            "nfai_retrieval_ingest_runs_total",
            &[],
            self.0.ingest_runs() as f64,
        );
    }
}
