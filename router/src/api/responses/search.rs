//! The `file_search` tool: the query searched in every listed vector store through the
//! retrieval service, the hits merged best first (and, with `fresh: true`, source rows re-read
//! from the database). Errors name the tool's fields (an unknown
//! store is a 404 on `tools[i].vector_store_ids` naming the store).

use nfai_retrieval::service::{Access, SearchRequest};
use nfai_retrieval::{AttributeFilter, SearchHit};

use super::object::Searched;
use super::wire::FileSearch;
use crate::api::files::access::{Need, store};
use crate::api::files::common::service;
use crate::error::ApiError;
use crate::state::AppState;

fn field(fs: &FileSearch, name: &str) -> String {
    format!("tools[{}].{name}", fs.tool_index)
}

/// Checks `fs`'s filter and that `access` may read every store of `fs`, so that a bad filter
/// or a missing store is a 4xx before any search runs or any answer starts. (Whether the
/// filter's attributes exist in a store is known only to the search.)
pub async fn check(state: &AppState, access: &Access, fs: &FileSearch) -> Result<(), ApiError> {
    if let Some(filter) = fs.filters.as_ref().filter(|f| !f.is_null()) {
        AttributeFilter::from_json(filter)
            .map_err(|e| ApiError::from(e).with_param(field(fs, "filters")))?;
    }
    let service = service(state)?;
    for id in &fs.vector_store_ids {
        store(service, access, id, Need::Read)
            .await
            .map_err(|e| e.with_param(field(fs, "vector_store_ids")))?;
    }
    Ok(())
}

/// Runs `fs` for the query of `pending` over its stores (which the caller may read: see
/// [`check`]) and answers `pending` with its hits.
pub async fn run(
    state: &AppState,
    fs: &FileSearch,
    pending: Searched,
) -> Result<Searched, ApiError> {
    let service = service(state)?;
    let query = pending.queries.first().cloned().unwrap_or_default();
    let mut hits: Vec<SearchHit> = Vec::new();
    for id in &fs.vector_store_ids {
        let found = service
            .search(
                id,
                SearchRequest {
                    queries: vec![query.clone()],
                    filter: fs.filters.clone(),
                    max_num_results: fs.max_num_results,
                    score_threshold: fs.score_threshold,
                },
            )
            .await
            .map_err(|e| {
                let e = ApiError::from(e);
                let param = match e.param.as_deref() {
                    Some("filters") => field(fs, "filters"),
                    Some("query") => "input".to_owned(),
                    _ => field(fs, "vector_store_ids"),
                };
                e.with_param(param)
            })?;
        hits.extend(found.iter().cloned());
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut seen = std::collections::HashSet::new();
    hits.retain(|h| seen.insert((h.payload.file_id.clone(), h.payload.chunk_index)));
    hits.truncate(fs.max_num_results);
    if fs.fresh {
        hits = crate::retrieval::fresh::refresh(state.sources(), &hits).await?;
    }
    Ok(Searched { hits, ..pending })
}
