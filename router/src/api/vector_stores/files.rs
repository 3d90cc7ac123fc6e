//! Store files: `POST`/`GET /v1/vector_stores/{id}/files`, `GET`/`POST` (attributes)/`DELETE
//! …/files/{file_id}` and `…/files/{file_id}/content`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use nfai_retrieval::records::FileStatus;
use nfai_retrieval::service::AddFile;
use serde_json::{Value, json};

use super::wire::{self, AddFileBody, UpdateFileBody};
use crate::api::files::common::{ListParams, list, service};
use crate::api::json::OpenAiJson;
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
    Path(store_id): Path<String>,
    OpenAiJson(body): OpenAiJson<AddFileBody>,
) -> Result<Json<Value>, ApiError> {
    let record = service(&state)?
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
    Path(store_id): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
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
    Path((store_id, file_id)): Path<(String, String)>,
) -> Result<([(&'static str, &'static str); 1], Json<Value>), ApiError> {
    let record = service(&state)?.store_file(&store_id, &file_id).await?;
    Ok(([POLL_AFTER], Json(wire::store_file(record))))
}

pub async fn update(
    State(state): State<AppState>,
    Path((store_id, file_id)): Path<(String, String)>,
    OpenAiJson(body): OpenAiJson<UpdateFileBody>,
) -> Result<Json<Value>, ApiError> {
    let record = service(&state)?
        .update_attributes(&store_id, &file_id, body.attributes.unwrap_or_default())
        .await?;
    Ok(Json(wire::store_file(record)))
}

pub async fn delete(
    State(state): State<AppState>,
    Path((store_id, file_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    service(&state)?
        .delete_store_file(&store_id, &file_id)
        .await?;
    Ok(Json(
        json!({"id": file_id, "object": "vector_store.file.deleted", "deleted": true}),
    ))
}

pub async fn content(
    State(state): State<AppState>,
    Path((store_id, file_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let text = service(&state)?
        .store_file_text(&store_id, &file_id)
        .await?;
    Ok(Json(json!({
        "object": "vector_store.file_content.page",
        "data": [{"type": "text", "text": text}],
        "has_more": false,
        "next_page": null,
    })))
}
