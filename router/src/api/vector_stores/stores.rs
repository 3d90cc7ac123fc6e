//! `POST`/`GET /v1/vector_stores`, `GET`/`POST` (modify)/`DELETE /v1/vector_stores/{id}`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use nfai_retrieval::service::{CreateStore, ModifyStore};
use serde_json::{Map, Value, json};

use super::wire::{self, CreateStoreBody};
use crate::api::files::access::{Need, access, file, store};
use crate::api::files::common::{ListParams, list, service};
use crate::api::json::OpenAiJson;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    OpenAiJson(body): OpenAiJson<CreateStoreBody>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    let access = access(caller);
    let file_ids = body.file_ids.unwrap_or_default();
    for id in &file_ids {
        file(service, &access, id, Need::Read)
            .await
            .map_err(|e| e.with_param("file_ids"))?;
    }
    let view = service
        .create_store(CreateStore {
            name: body.name,
            metadata: body.metadata.unwrap_or_default(),
            expires_after: body.expires_after.filter(|v| !v.is_null()),
            chunking_strategy: body.chunking_strategy,
            file_ids,
            embedding_model: body.embedding_model,
            owner: access.owner(),
        })
        .await?;
    Ok(Json(wire::store(view)))
}

pub async fn list_stores(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    let params = ListParams::from_query(params)?;
    let page = service
        .list_stores(&params.list_query()?, &access(caller))
        .await?;
    Ok(Json(list(page, wire::store)))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    store(service, &access(caller), &id, Need::Read).await?;
    Ok(Json(wire::store(service.store(&id).await?)))
}

/// Modifies `name`, `metadata` and `expires_after`; a field sent as `null` is cleared.
pub async fn modify(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
    OpenAiJson(body): OpenAiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    store(service(&state)?, &access(caller), &id, Need::Change).await?;
    let name = match body.get("name") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => {
            return Err(ApiError::invalid(
                "name",
                "'name' must be a string or null.",
            ));
        }
    };
    let metadata = match body.get("metadata") {
        None => None,
        Some(Value::Null) => Some(Map::new()),
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => {
            return Err(ApiError::invalid(
                "metadata",
                "'metadata' must be an object.",
            ));
        }
    };
    let expires_after = match body.get("expires_after") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => Some(Some(v.clone())),
    };
    let view = service(&state)?
        .modify_store(
            &id,
            ModifyStore {
                name,
                metadata,
                expires_after,
            },
        )
        .await?;
    Ok(Json(wire::store(view)))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    store(service, &access(caller), &id, Need::Change).await?;
    service.delete_store(&id).await?;
    Ok(Json(
        json!({"id": id, "object": "vector_store.deleted", "deleted": true}),
    ))
}
