//! `POST /v1/vector_stores/{id}/search`: `query` (string or list), `filters`,
//! `max_num_results` (1..=50, default 10), `ranking_options.score_threshold`. `rewrite_query:
//! true` is refused by name: this server does not rewrite queries. `fresh: true` (nfai's
//! extension) re-reads hits of source rows from the database.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use nfai_retrieval::service::{MAX_NUM_RESULTS, SearchRequest};
use serde_json::Value;

use super::wire::{self, QueryInput, SearchBody};
use crate::api::files::access::{Need, access, store};
use crate::api::files::common::service;
use crate::api::json::OpenAiJson;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// `max_num_results` when absent, as OpenAI.
const DEFAULT_NUM_RESULTS: i64 = 10;
/// Rankers accepted; all rank by cosine similarity.
const RANKERS: [&str; 3] = ["auto", "default-2024-11-15", "none"];

pub async fn search(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(store_id): Path<String>,
    OpenAiJson(body): OpenAiJson<SearchBody>,
) -> Result<Json<Value>, ApiError> {
    if body.rewrite_query == Some(true) {
        return Err(ApiError::unsupported(
            "rewrite_query",
            "'rewrite_query' is not supported by this server; send the query as it should be searched.",
        ));
    }
    let max = body.max_num_results.unwrap_or(DEFAULT_NUM_RESULTS);
    if !(1..=MAX_NUM_RESULTS as i64).contains(&max) {
        return Err(ApiError::invalid(
            "max_num_results",
            format!("'max_num_results' must be between 1 and {MAX_NUM_RESULTS}, got {max}."),
        ));
    }
    let ranking = body.ranking_options.unwrap_or_default();
    if let Some(ranker) = ranking.ranker.as_deref()
        && !RANKERS.contains(&ranker)
    {
        return Err(ApiError::invalid(
            "ranking_options.ranker",
            format!(
                "'ranker' must be one of {}, got '{ranker}'.",
                RANKERS.join(", ")
            ),
        ));
    }
    let queries = match body.query {
        QueryInput::One(q) => vec![q],
        QueryInput::Many(qs) => qs,
    };
    let service = service(&state)?;
    store(service, &access(caller), &store_id, Need::Read).await?;
    let hits = service
        .search(
            &store_id,
            SearchRequest {
                queries: queries.clone(),
                filter: body.filters,
                max_num_results: max as usize,
                score_threshold: ranking.score_threshold,
            },
        )
        .await?;
    if body.fresh {
        let hits = crate::retrieval::fresh::refresh(state.sources(), &hits).await?;
        return Ok(Json(wire::search_page(queries, &hits)));
    }
    Ok(Json(wire::search_page(queries, &hits)))
}
