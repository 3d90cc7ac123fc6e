//! File batches: `POST …/file_batches`, `GET …/file_batches/{batch_id}`,
//! `POST …/file_batches/{batch_id}/cancel` and `GET …/file_batches/{batch_id}/files`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use nfai_retrieval::service::AddFile;
use serde_json::Value;

use super::files::status_filter;
use super::wire::{self, CreateBatchBody};
use crate::api::files::common::{ListParams, list, service};
use crate::api::json::OpenAiJson;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    Path(store_id): Path<String>,
    OpenAiJson(body): OpenAiJson<CreateBatchBody>,
) -> Result<Json<Value>, ApiError> {
    let files = match (body.file_ids, body.files) {
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
    let view = service(&state)?.create_batch(&store_id, files).await?;
    Ok(Json(wire::batch(view)))
}

pub async fn get(
    State(state): State<AppState>,
    Path((store_id, batch_id)): Path<(String, String)>,
) -> Result<([(&'static str, &'static str); 1], Json<Value>), ApiError> {
    let view = service(&state)?.batch(&store_id, &batch_id).await?;
    Ok(([super::files::POLL_AFTER], Json(wire::batch(view))))
}

pub async fn cancel(
    State(state): State<AppState>,
    Path((store_id, batch_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let view = service(&state)?.cancel_batch(&store_id, &batch_id).await?;
    Ok(Json(wire::batch(view)))
}

pub async fn list_files(
    State(state): State<AppState>,
    Path((store_id, batch_id)): Path<(String, String)>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    service.batch(&store_id, &batch_id).await?;
    let params = ListParams::from_query(params)?;
    let status = status_filter(params.filter.as_deref())?;
    let page = service
        .list_store_files(&store_id, &params.list_query()?, status, Some(&batch_id))
        .await?;
    Ok(Json(list(page, wire::store_file)))
}
