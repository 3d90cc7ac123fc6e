//! `/admin/keys`: make (the secret is answered once), list, revoke API keys, and a key's usage:
//! this minute's window (over every replica when Redis shares the limits) and its requests and
//! tokens per model since the server started.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::auth::{KeyRecord, Keyring, NewKey, StoreError};
use crate::error::ApiError;
use crate::limits::Limits;
use crate::state::AppState;

fn ring(state: &AppState) -> Result<&Arc<Keyring>, ApiError> {
    state
        .keyring()
        .ok_or_else(|| ApiError::unavailable("API keys are not enabled on this server."))
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(id) => key_not_found(&id),
        other => ApiError::unavailable(format!("The key store failed: {other}")),
    }
}

fn key_not_found(id: &str) -> ApiError {
    ApiError::not_found_route(&format!("/admin/keys/{id}"))
}

/// A key as the admin API shows it (never its secret).
fn key_json(k: &KeyRecord) -> Value {
    json!({
        "id": k.id,
        "object": "api_key",
        "name": k.name,
        "models": k.models,
        "rpm": k.rpm,
        "tpm": k.tpm,
        "expires_at": k.expires_at,
        "created_at": k.created_at,
    })
}

pub async fn create(
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ring = ring(&state)?;
    let new: NewKey = crate::api::json::parse(&bytes)?;
    let now = crate::time::unix_now();
    new.check(now)
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    let (record, secret) = new.issue(now);
    ring.store()
        .insert(record.clone())
        .await
        .map_err(store_error)?;
    ring.reload().await.map_err(store_error)?;
    let mut body = key_json(&record);
    body["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let ring = ring(&state)?;
    ring.reload_if_changed().await.map_err(store_error)?;
    let data: Vec<Value> = ring.all().iter().map(|k| key_json(k)).collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ring = ring(&state)?;
    if ring.is_file_key(&id) {
        return Err(ApiError::conflict(format!(
            "Key {id} comes from auth.keys_file; remove it there."
        )));
    }
    ring.store().remove(id.clone()).await.map_err(store_error)?;
    ring.reload().await.map_err(store_error)?;
    Ok(Json(
        json!({ "id": id, "object": "api_key.deleted", "deleted": true }),
    ))
}

pub async fn usage(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ring = ring(&state)?;
    ring.reload_if_changed().await.map_err(store_error)?;
    let key = ring.get(&id).ok_or_else(|| key_not_found(&id))?;
    let limiter = state.limiter();
    let limits = Limits {
        rpm: key.rpm,
        tpm: key.tpm,
    };
    let q = limiter.quota(&key.id, limits);
    let (requests, tokens) = limiter.used(&key.id);
    let models: Vec<Value> = limiter
        .usage(&key.id)
        .iter()
        .map(|(model, u)| {
            json!({
                "model": model,
                "requests": u.requests,
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "total_tokens": u.prompt_tokens + u.completion_tokens,
            })
        })
        .collect();
    Ok(Json(json!({
        "object": "api_key.usage",
        "key_id": key.id,
        "window": {
            "requests": requests,
            "tokens": tokens,
            "limit_requests": key.rpm,
            "limit_tokens": key.tpm,
            "reset_seconds": q.reset_secs,
            "shared": limiter.shared(),
        },
        "models": models,
    })))
}
