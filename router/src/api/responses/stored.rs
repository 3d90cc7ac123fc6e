//! `GET /v1/responses/{id}` and `DELETE /v1/responses/{id}`: the stored responses of the caller
//! (another key's response is answered 404, as if it did not exist).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::api::json::JsonBody;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::responses::store::{ResponseStore, StoredResponse};
use crate::state::AppState;

fn not_found(id: &str) -> ApiError {
    let mut e = ApiError::invalid("response_id", format!("Response with id '{id}' not found."))
        .with_code("not_found");
    e.status = StatusCode::NOT_FOUND;
    e
}

fn store(state: &AppState) -> Result<&ResponseStore, ApiError> {
    state
        .responses()
        .ok_or_else(|| ApiError::unavailable("Stored responses are not enabled on this server."))
}

/// The record `id` when `caller` may see it.
async fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<StoredResponse, ApiError> {
    match store(state)?.get(id).await? {
        Some(r) if caller.may_see(r.owner.as_deref()) => Ok(r),
        _ => Err(not_found(id)),
    }
}

pub async fn get(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<JsonBody<Value>, ApiError> {
    let caller = caller.map(|Extension(c)| c).unwrap_or_default();
    Ok(JsonBody(visible(&state, &caller, &id).await?.response))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<JsonBody<Value>, ApiError> {
    let caller = caller.map(|Extension(c)| c).unwrap_or_default();
    visible(&state, &caller, &id).await?;
    if !store(&state)?.delete(&id).await? {
        return Err(not_found(&id));
    }
    Ok(JsonBody(
        json!({"id": id, "object": "response.deleted", "deleted": true}),
    ))
}
