//! `fresh: true` on search and file_search: hits that come from source rows
//! (`<source>:<row id>`) are checked against the rows as they are now, read through the pool,
//! so that an answer never quotes a stale record.
//!
//! - A row deleted since it was indexed (gone, or its `deleted_at` set) drops its hits.
//! - A row whose current text no longer holds the hit's chunk has the hit's text replaced by
//!   the row's whole current text, with its current attributes; later hits of the same row are
//!   dropped (they would repeat it). Its source is asked to sync, so the index catches up.
//! - Hits of uploaded files, and of rows that have not changed, are kept as they are.
//!
//! A database that cannot answer (pool exhausted, server down) fails the request with 503
//! and `Retry-After`, rather than answer from rows that may be stale.

use std::collections::{BTreeMap, HashMap, HashSet};

use nfai_retrieval::sources::{SourceRow, SyncError};
use nfai_retrieval::{AttributeValue, SearchHit};

use super::sources::Sources;
use crate::error::ApiError;

/// The hits with source rows re-read; see the module docs.
pub async fn refresh(
    sources: Option<&Sources>,
    hits: &[SearchHit],
) -> Result<Vec<SearchHit>, ApiError> {
    let Some(sources) = sources else {
        return Ok(hits.to_vec());
    };
    let runner = &sources.runner;
    let mut wanted: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for hit in hits {
        if let Some((source, row)) = runner.source_of_file(&hit.payload.file_id) {
            let ids = wanted.entry(source).or_default();
            if !ids.iter().any(|i| i == row) {
                ids.push(row.to_owned());
            }
        }
    }
    let mut current: HashMap<(String, String), SourceRow> = HashMap::new();
    for (source, ids) in &wanted {
        let rows = match runner.read_rows(source, ids).await {
            Some(Ok(rows)) => rows,
            Some(Err(SyncError::Unavailable(cause))) => {
                return Err(ApiError::unavailable(format!(
                    "fresh: the database of source `{source}` cannot answer now: {cause}"
                )));
            }
            Some(Err(SyncError::Failed(cause))) => {
                return Err(ApiError::unavailable(format!(
                    "fresh: reading source `{source}` failed: {cause}"
                )));
            }
            None => continue,
        };
        for row in rows {
            current.insert(((*source).to_owned(), row.id.clone()), row);
        }
    }
    let mut out = Vec::with_capacity(hits.len());
    let mut replaced: HashSet<String> = HashSet::new();
    let mut stale: HashSet<&str> = HashSet::new();
    for hit in hits {
        let Some((source, row_id)) = runner.source_of_file(&hit.payload.file_id) else {
            out.push(hit.clone());
            continue;
        };
        match current.get(&(source.to_owned(), row_id.to_owned())) {
            None => {
                stale.insert(source);
            }
            Some(row) if row.deleted => {
                stale.insert(source);
            }
            Some(row) if row.text.contains(hit.payload.text.trim()) => out.push(hit.clone()),
            Some(row) => {
                stale.insert(source);
                if replaced.insert(hit.payload.file_id.clone()) {
                    out.push(with_row(hit, row, source));
                }
            }
        }
    }
    for source in stale {
        runner.trigger(source);
    }
    Ok(out)
}

/// The hit with the row's current text and attributes (plus `source`, as the sync sets it).
fn with_row(hit: &SearchHit, row: &SourceRow, source: &str) -> SearchHit {
    let mut hit = hit.clone();
    hit.payload.text = row.text.clone();
    let mut attributes: BTreeMap<String, AttributeValue> = row
        .attributes
        .iter()
        .filter_map(|(k, v)| AttributeValue::from_json(v).map(|v| (k.clone(), v)))
        .collect();
    attributes.insert("source".into(), AttributeValue::String(source.to_owned()));
    hit.payload.attributes = attributes;
    hit
}
