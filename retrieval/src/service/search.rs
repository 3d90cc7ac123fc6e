//! `search`: queries embedded (as queries, NFC-normalised, cached) with the store's model,
//! searched with the OpenAI filter (language-balanced when the store holds several languages,
//! see [`crate::balance`]), merged best-first; whole results cached per store version.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::RetrievalService;
use super::cache::{QueryKey, ResultKey};
use super::embed::TextKind;
use crate::error::{Result, RetrievalError};
use crate::filter::AttributeFilter;
use crate::ingest::normalize_text;
use crate::types::{SearchHit, SearchQuery};

/// OpenAI's bound on `max_num_results`.
pub const MAX_NUM_RESULTS: usize = 50;
/// Most queries in one search.
const MAX_QUERIES: usize = 16;

/// A search, parsed from the wire.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub queries: Vec<String>,
    pub filter: Option<Value>,
    pub max_num_results: usize,
    pub score_threshold: Option<f32>,
}

impl RetrievalService {
    /// The best chunks for any of the queries, best first, at most `max_num_results`.
    pub async fn search(&self, store_id: &str, req: SearchRequest) -> Result<Arc<Vec<SearchHit>>> {
        if req.queries.is_empty() || req.queries.len() > MAX_QUERIES {
            return Err(RetrievalError::InvalidArgument {
                field: "query",
                reason: format!("must be a string or a list of 1..={MAX_QUERIES} strings"),
            });
        }
        if req.queries.iter().any(|q| q.trim().is_empty()) {
            return Err(RetrievalError::InvalidArgument {
                field: "query",
                reason: "must not be empty".into(),
            });
        }
        if !(1..=MAX_NUM_RESULTS).contains(&req.max_num_results) {
            return Err(RetrievalError::InvalidArgument {
                field: "max_num_results",
                reason: format!("{} is outside 1..={MAX_NUM_RESULTS}", req.max_num_results),
            });
        }
        if let Some(t) = req.score_threshold
            && !(0.0..=1.0).contains(&t)
        {
            return Err(RetrievalError::InvalidArgument {
                field: "ranking_options.score_threshold",
                reason: format!("{t} is outside 0..=1"),
            });
        }
        let filter = req
            .filter
            .as_ref()
            .filter(|f| !f.is_null())
            .map(AttributeFilter::from_json)
            .transpose()?;
        let store = self.store_record(store_id).await?;
        let queries: Vec<String> = req.queries.iter().map(|q| normalize_text(q)).collect();
        let key = ResultKey {
            store: store_id.to_owned(),
            version: self.0.caches.version(store_id),
            queries: queries.clone(),
            filter: req
                .filter
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default(),
            k: req.max_num_results,
            threshold_bits: req.score_threshold.map(f32::to_bits),
        };
        if let Some(hits) = self.0.caches.result(&key).await {
            return Ok(hits);
        }
        // A store whose languages cannot be measured now is searched as is.
        let balance = match self.language_balance(store_id).await {
            Ok(balance) => balance,
            Err(e) => {
                tracing::warn!(store = store_id, error = %e, "language balance unavailable");
                None
            }
        };
        let mut best: HashMap<u64, SearchHit> = HashMap::new();
        for query in queries {
            let vector = self.query_vector(&store.model, query).await?;
            let query = SearchQuery {
                model: store.model.clone(),
                vector: vector.as_ref().clone(),
                filter: filter.clone(),
                limit: req.max_num_results,
                score_threshold: req.score_threshold,
                languages: None,
            };
            let hits = match &balance {
                Some(balance) => {
                    balance
                        .search(self.0.store.as_ref(), store_id, query)
                        .await?
                }
                None => self.0.store.search(store_id, query).await?,
            };
            for hit in hits {
                match best.get(&hit.id) {
                    Some(seen) if seen.score >= hit.score => {}
                    _ => {
                        best.insert(hit.id, hit);
                    }
                }
            }
        }
        let mut hits: Vec<SearchHit> = best.into_values().collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        hits.truncate(req.max_num_results);
        let hits = Arc::new(hits);
        self.0.caches.put_result(key, Arc::clone(&hits)).await;
        Ok(hits)
    }

    /// A query's embedding, from the cache or the model.
    async fn query_vector(&self, model: &str, text: String) -> Result<Arc<Vec<f32>>> {
        let key = QueryKey {
            model: model.to_owned(),
            kind: TextKind::Query,
            text,
        };
        if let Some(v) = self.0.caches.query(&key).await {
            return Ok(v);
        }
        let vector = self
            .0
            .embed
            .embed(model, vec![key.text.clone()], TextKind::Query)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| RetrievalError::Unavailable("the embedder returned no vector".into()))?;
        let vector = Arc::new(vector);
        self.0.caches.put_query(key, Arc::clone(&vector)).await;
        Ok(vector)
    }
}
