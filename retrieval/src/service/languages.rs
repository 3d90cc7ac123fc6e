//! The language balance of each store ([`LanguageBalance`]), measured on a sample of its
//! chunks and kept until the store changes: at most every [`REMEASURE`] for a store larger
//! than the sample (its means barely move as it grows) or whose records other replicas share
//! (their writes do not bump this process's versions).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::RetrievalService;
use crate::balance::{LanguageBalance, SAMPLE_CHUNKS};
use crate::error::Result;

/// The longest a measure of a large or shared store is kept after the store changed.
const REMEASURE: Duration = Duration::from_secs(30);

/// One store's last measure.
#[derive(Clone)]
struct Measure {
    version: u64,
    at: Instant,
    /// The sample filled [`SAMPLE_CHUNKS`]: the store is larger than the sample.
    large: bool,
    balance: Option<Arc<LanguageBalance>>,
}

/// Measures by store id.
#[derive(Default)]
pub(super) struct Balances(Mutex<HashMap<String, Measure>>);

impl Balances {
    fn get(&self, store: &str) -> Option<Measure> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(store)
            .cloned()
    }

    /// Drops the measure of a deleted store.
    pub(super) fn forget(&self, store: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(store);
    }

    fn put(&self, store: &str, measure: Measure) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(store.to_owned(), measure);
    }
}

impl RetrievalService {
    /// The language balance of `store_id`; `None` when it holds fewer than two languages.
    pub(super) async fn language_balance(
        &self,
        store_id: &str,
    ) -> Result<Option<Arc<LanguageBalance>>> {
        let version = self.0.caches.version(store_id);
        let shared = self.0.records.shared();
        if let Some(m) = self.0.balances.get(store_id) {
            let fresh = m.at.elapsed() < REMEASURE;
            let unchanged = m.version == version && !shared;
            if unchanged || ((m.large || shared) && fresh) {
                return Ok(m.balance);
            }
        }
        let started = Instant::now();
        let sample = self.0.store.sample(store_id, SAMPLE_CHUNKS).await?;
        let balance = LanguageBalance::from_sample(&sample).map(Arc::new);
        tracing::debug!(
            store = store_id,
            sampled = sample.len(),
            languages = balance.as_ref().map_or(1, |b| b.scopes().count()),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "measured the store's languages"
        );
        self.0.balances.put(
            store_id,
            Measure {
                version,
                at: Instant::now(),
                large: sample.len() >= SAMPLE_CHUNKS,
                balance: balance.clone(),
            },
        );
        Ok(balance)
    }
}
