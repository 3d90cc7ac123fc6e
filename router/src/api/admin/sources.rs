//! `[[retrieval.sources]]` through the admin API:
//! - `GET /admin/sources`: every source's status;
//! - `POST /admin/vector_stores/{id}/sync` (`?source=NAME` for one): starts a sync of the
//!   sources that write to the store (by its id, or the store name a source gives) and
//!   answers 202 with their statuses; a sync already running runs once more after it ends;
//! - `GET /admin/vector_stores/{id}/sync`: the progress of those sources, and the store's
//!   `file_counts` (how many of its files are embedded).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use nfai_retrieval::RetrievalError;
use nfai_retrieval::sources::SourceStatus;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::retrieval::sources::Sources;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct SyncQuery {
    /// Only this source.
    pub source: Option<String>,
}

fn sources(state: &AppState) -> Result<&Sources, ApiError> {
    state.sources().ok_or_else(|| {
        ApiError::from(RetrievalError::NotFound(
            "no [[retrieval.sources]] are configured on this server".into(),
        ))
    })
}

/// The statuses, with the store's `file_counts` (embedding progress) once it exists.
async fn page(state: &AppState, store: &str, statuses: &[SourceStatus]) -> Value {
    let counts = match state.retrieval() {
        Some(service) => crate::retrieval::sources::store_counts(service, store).await,
        None => None,
    };
    json!({
        "object": "list",
        "vector_store_id": store,
        "file_counts": counts.map(crate::api::vector_stores::wire::counts),
        "data": statuses,
    })
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let statuses = state
        .sources()
        .map(|s| s.runner.statuses())
        .unwrap_or_default();
    Ok(Json(json!({ "object": "list", "data": statuses })))
}

/// The names of the sources of `store` (restricted to `only`); 404 naming what is missing.
async fn of_store(
    sources: &Sources,
    store: &str,
    only: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let names = sources.runner.sources_of_store(store).await;
    if names.is_empty() {
        return Err(RetrievalError::Missing {
            what: "source for vector store",
            id: store.to_owned(),
        }
        .into());
    }
    match only {
        None => Ok(names),
        Some(one) if names.iter().any(|n| n == one) => Ok(vec![one.to_owned()]),
        Some(one) => Err(ApiError::invalid(
            "source",
            format!(
                "source `{one}` does not write to vector store `{store}` (its sources: {})",
                names.join(", ")
            ),
        )),
    }
}

fn statuses(sources: &Sources, names: &[String]) -> Vec<SourceStatus> {
    names
        .iter()
        .filter_map(|n| sources.runner.status(n))
        .collect()
}

pub async fn start(
    State(state): State<AppState>,
    Path(store): Path<String>,
    Query(q): Query<SyncQuery>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let sources = sources(&state)?;
    let names = of_store(sources, &store, q.source.as_deref()).await?;
    for name in &names {
        sources.runner.trigger(name);
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(page(&state, &store, &statuses(sources, &names)).await),
    ))
}

pub async fn progress(
    State(state): State<AppState>,
    Path(store): Path<String>,
    Query(q): Query<SyncQuery>,
) -> Result<Json<Value>, ApiError> {
    let sources = sources(&state)?;
    let names = of_store(sources, &store, q.source.as_deref()).await?;
    Ok(Json(page(&state, &store, &statuses(sources, &names)).await))
}
