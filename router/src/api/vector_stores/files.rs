//! Store files: `POST`/`GET /v1/vector_stores/{id}/files`, `GET`/`POST` (attributes)/`DELETE
//! …/files/{file_id}` and `…/files/{file_id}/content`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use nfai_retrieval::records::FileStatus;
use nfai_retrieval::service::AddFile;
use serde_json::{Value, json};

use super::wire::{self, AddFileBody, UpdateFileBody};
use crate::api::files::access::{Need, access, file, store};
use crate::api::files::common::{ListParams, list, service};
use crate::api::json::OpenAiJson;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The `filter` query parameter: a store file status.
pub fn status_filter(filter: Option<&str>) -> Result<Option<FileStatus>, ApiError> {
    filter
        .map(|f| {
            FileStatus::parse(f).ok_or_else(|| {
                ApiError::invalid(
                    "filter",
                    "'filter' must be in_progress, completed, failed or cancelled.",
                )
            })
        })
        .transpose()
}

pub async fn create(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(store_id): Path<String>,
    OpenAiJson(body): OpenAiJson<AddFileBody>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    let access = access(caller);
    store(service, &access, &store_id, Need::Change).await?;
    file(service, &access, &body.file_id, Need::Read)
        .await
        .map_err(|e| e.with_param("file_id"))?;
    let record = service
        .add_file(
            &store_id,
            AddFile {
                file_id: body.file_id,
                attributes: body.attributes.unwrap_or_default(),
                chunking_strategy: body.chunking_strategy,
            },
            None,
        )
        .await?;
    Ok(Json(wire::store_file(record)))
}

pub async fn list_files(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(store_id): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    store(service, &access(caller), &store_id, Need::Read).await?;
    let params = ListParams::from_query(params)?;
    let status = status_filter(params.filter.as_deref())?;
    let page = service
        .list_store_files(&store_id, &params.list_query()?, status, None)
        .await?;
    Ok(Json(list(page, wire::store_file)))
}

/// How soon the SDK's poll helpers ask again about a file or batch in progress.
pub const POLL_AFTER: (&str, &str) = ("openai-poll-after-ms", "250");

pub async fn get(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path((store_id, file_id)): Path<(String, String)>,
) -> Result<([(&'static str, &'static str); 1], Json<Value>), ApiError> {
    let service = service(&state)?;
    store(service, &access(caller), &store_id, Need::Read).await?;
    let record = service.store_file(&store_id, &file_id).await?;
    Ok(([POLL_AFTER], Json(wire::store_file(record))))
}

pub async fn update(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path((store_id, file_id)): Path<(String, String)>,
    OpenAiJson(body): OpenAiJson<UpdateFileBody>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    store(service, &access(caller), &store_id, Need::Change).await?;
    let record = service
        .update_attributes(&store_id, &file_id, body.attributes.unwrap_or_default())
        .await?;
    Ok(Json(wire::store_file(record)))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path((store_id, file_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    store(service, &access(caller), &store_id, Need::Change).await?;
    service.delete_store_file(&store_id, &file_id).await?;
    Ok(Json(
        json!({"id": file_id, "object": "vector_store.file.deleted", "deleted": true}),
    ))
}

pub async fn content(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path((store_id, file_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    store(service, &access(caller), &store_id, Need::Read).await?;
    let text = service.store_file_text(&store_id, &file_id).await?;
    Ok(Json(json!({
        "object": "vector_store.file_content.page",
        "data": [{"type": "text", "text": text}],
        "has_more": false,
        "next_page": null,
    })))
}
