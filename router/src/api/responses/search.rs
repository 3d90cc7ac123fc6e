//! The `file_search` tool: the query searched in every listed vector store through the
//! retrieval service, the hits merged best first (and, with `fresh: true`, source rows re-read
//! from the database). Errors name the tool's fields (an unknown
//! store is a 404 on `tools[i].vector_store_ids` naming the store).

use nfai_retrieval::SearchHit;
use nfai_retrieval::service::{Access, SearchRequest};

use super::object::{Searched, new_id};
use super::wire::FileSearch;
use crate::api::files::access::{Need, store};
use crate::api::files::common::service;
use crate::error::ApiError;
use crate::state::AppState;

/// Runs `fs` for `query`, over the stores `access` reads.
pub async fn run(
    state: &AppState,
    access: &Access,
    fs: &FileSearch,
    query: &str,
    include_results: bool,
) -> Result<Searched, ApiError> {
    let service = service(state)?;
    let field = |name: &str| format!("tools[{}].{name}", fs.tool_index);
    // Every store is checked first, so that a missing one is named before any search runs.
    for id in &fs.vector_store_ids {
        store(service, access, id, Need::Read)
            .await
            .map_err(|e| e.with_param(field("vector_store_ids")))?;
    }
    let mut hits: Vec<SearchHit> = Vec::new();
    for id in &fs.vector_store_ids {
        let found = service
            .search(
                id,
                SearchRequest {
                    queries: vec![query.to_owned()],
                    filter: fs.filters.clone(),
                    max_num_results: fs.max_num_results,
                    score_threshold: fs.score_threshold,
                },
            )
            .await
            .map_err(|e| {
                let e = ApiError::from(e);
                let param = match e.param.as_deref() {
                    Some("filters") => field("filters"),
                    Some("query") => "input".to_owned(),
                    _ => field("vector_store_ids"),
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
    Ok(Searched {
        item_id: new_id("fs"),
        queries: vec![query.to_owned()],
        hits,
        include_results,
    })
}
