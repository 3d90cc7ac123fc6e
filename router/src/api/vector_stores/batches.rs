//! File batches: `POST …/file_batches`, `GET …/file_batches/{batch_id}`,
//! `POST …/file_batches/{batch_id}/cancel` and `GET …/file_batches/{batch_id}/files`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use nfai_retrieval::service::AddFile;
use serde_json::Value;

use super::files::status_filter;
use super::wire::{self, CreateBatchBody};
use crate::api::files::access::{Need, access, file, store};
use crate::api::files::common::{ListParams, list, service};
use crate::api::json::OpenAiJson;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(store_id): Path<String>,
    OpenAiJson(body): OpenAiJson<CreateBatchBody>,
) -> Result<Json<Value>, ApiError> {
    let files: Vec<AddFile> = match (body.file_ids, body.files) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "files",
                "Send either 'file_ids' or 'files', not both.",
            ));
        }
        (Some(ids), None) => ids
            .into_iter()
            .map(|file_id| AddFile {
                file_id,
                attributes: body.attributes.clone().unwrap_or_default(),
                chunking_strategy: body.chunking_strategy.clone(),
            })
            .collect(),
        (None, Some(files)) => files
            .into_iter()
            .map(|f| AddFile {
                file_id: f.file_id,
                attributes: f.attributes.unwrap_or_default(),
                chunking_strategy: f
                    .chunking_strategy
                    .or_else(|| body.chunking_strategy.clone()),
            })
            .collect(),
        (None, None) => {
            return Err(ApiError::invalid(
                "file_ids",
                "Missing required parameter: 'file_ids'.",
            ));
        }
    };
    let service = service(&state)?;
    let access = access(caller);
    store(service, &access, &store_id, Need::Change).await?;
    for f in &files {
        file(service, &access, &f.file_id, Need::Read)
            .await
            .map_err(|e| e.with_param("file_ids"))?;
    }
    let view = service.create_batch(&store_id, files).await?;
    Ok(Json(wire::batch(view)))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path((store_id, batch_id)): Path<(String, String)>,
) -> Result<([(&'static str, &'static str); 1], Json<Value>), ApiError> {
    let service = service(&state)?;
    store(service, &access(caller), &store_id, Need::Read).await?;
    let view = service.batch(&store_id, &batch_id).await?;
    Ok(([super::files::POLL_AFTER], Json(wire::batch(view))))
}

pub async fn cancel(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path((store_id, batch_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    store(service, &access(caller), &store_id, Need::Change).await?;
    let view = service.cancel_batch(&store_id, &batch_id).await?;
    Ok(Json(wire::batch(view)))
}

pub async fn list_files(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path((store_id, batch_id)): Path<(String, String)>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    store(service, &access(caller), &store_id, Need::Read).await?;
    service.batch(&store_id, &batch_id).await?;
    let params = ListParams::from_query(params)?;
    let status = status_filter(params.filter.as_deref())?;
    let page = service
        .list_store_files(&store_id, &params.list_query()?, status, Some(&batch_id))
        .await?;
    Ok(Json(list(page, wire::store_file)))
}
