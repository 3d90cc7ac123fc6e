//! The service's two caches, both moka caches bounded by bytes (a weigher per entry) with hit
//! and miss counters for `/metrics`:
//!
//! - query embeddings, keyed by (model, input kind, text);
//! - search results, keyed by (store, store version, queries, filter, k, threshold). Every
//!   write to a store bumps its version, so a cached result of older contents is never hit.
//!   With records shared by replicas, another replica's writes bump nothing here: results then
//!   also expire after a short time to live.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use moka::future::Cache;

use super::embed::TextKind;
use crate::types::SearchHit;

/// Counters of one cache, as `/metrics` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStats {
    pub name: &'static str,
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    /// Sum of the entries' weights, in bytes.
    pub bytes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Counters {
    fn record(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct QueryKey {
    pub model: String,
    pub kind: TextKind,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ResultKey {
    pub store: String,
    pub version: u64,
    pub queries: Vec<String>,
    pub filter: String,
    pub k: usize,
    pub threshold_bits: Option<u32>,
}

fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes.saturating_add(64)).unwrap_or(u32::MAX)
}

/// Both caches and the store versions.
#[derive(Debug)]
pub(crate) struct Caches {
    queries: Cache<QueryKey, Arc<Vec<f32>>>,
    results: Cache<ResultKey, Arc<Vec<SearchHit>>>,
    query_counters: Counters,
    result_counters: Counters,
    versions: Mutex<HashMap<String, u64>>,
}

impl Caches {
    /// Caches of the given byte budgets; with `result_ttl`, a result is dropped that long
    /// after it was cached.
    pub fn new(
        query_bytes: u64,
        result_bytes: u64,
        result_ttl: Option<std::time::Duration>,
    ) -> Self {
        let mut results = Cache::builder().max_capacity(result_bytes).weigher(
            |k: &ResultKey, v: &Arc<Vec<SearchHit>>| {
                let key: usize = k.queries.iter().map(String::len).sum::<usize>() + k.filter.len();
                let hits: usize = v
                    .iter()
                    .map(|h| h.payload.text.len() + h.payload.filename.len() + 128)
                    .sum();
                weight(key + hits)
            },
        );
        if let Some(ttl) = result_ttl {
            results = results.time_to_live(ttl);
        }
        Self {
            queries: Cache::builder()
                .max_capacity(query_bytes)
                .weigher(|k: &QueryKey, v: &Arc<Vec<f32>>| {
                    weight(k.model.len() + k.text.len() + v.len() * 4)
                })
                .build(),
            results: results.build(),
            query_counters: Counters::default(),
            result_counters: Counters::default(),
            versions: Mutex::new(HashMap::new()),
        }
    }

    pub async fn query(&self, key: &QueryKey) -> Option<Arc<Vec<f32>>> {
        let found = self.queries.get(key).await;
        self.query_counters.record(found.is_some());
        found
    }

    pub async fn put_query(&self, key: QueryKey, vector: Arc<Vec<f32>>) {
        self.queries.insert(key, vector).await;
    }

    pub async fn result(&self, key: &ResultKey) -> Option<Arc<Vec<SearchHit>>> {
        let found = self.results.get(key).await;
        self.result_counters.record(found.is_some());
        found
    }

    pub async fn put_result(&self, key: ResultKey, hits: Arc<Vec<SearchHit>>) {
        self.results.insert(key, hits).await;
    }

    /// The store's current version.
    pub fn version(&self, store: &str) -> u64 {
        self.versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(store)
            .copied()
            .unwrap_or(0)
    }

    /// Marks a write to `store`: cached results of older versions are never hit again.
    pub fn bump(&self, store: &str) {
        *self
            .versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(store.to_owned())
            .or_insert(0) += 1;
    }

    pub fn stats(&self) -> [CacheStats; 2] {
        [
            CacheStats {
                name: "query_embeddings",
                hits: self.query_counters.hits.load(Ordering::Relaxed),
                misses: self.query_counters.misses.load(Ordering::Relaxed),
                entries: self.queries.entry_count(),
                bytes: self.queries.weighted_size(),
            },
            CacheStats {
                name: "search_results",
                hits: self.result_counters.hits.load(Ordering::Relaxed),
                misses: self.result_counters.misses.load(Ordering::Relaxed),
                entries: self.results.entry_count(),
                bytes: self.results.weighted_size(),
            },
        ]
    }
}
