//! `GET /v1/files`, `GET`/`DELETE /v1/files/{id}` and `GET /v1/files/{id}/content` (the bytes,
//! streamed from disk).

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::TryStreamExt;
use serde_json::{Value, json};

use super::access::{Need, access, file};
use super::common::{ListParams, list, service};
use super::wire;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn list_files(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    let params = ListParams::from_query(params)?;
    let page = service
        .list_files(
            &params.list_query()?,
            params.purpose.as_deref(),
            &access(caller),
        )
        .await?;
    Ok(Json(list(page, wire::file)))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = file(service(&state)?, &access(caller), &id, Need::Read).await?;
    Ok(Json(wire::file(record)))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    file(service, &access(caller), &id, Need::Change).await?;
    service.delete_file(&id).await?;
    Ok(Json(json!({"id": id, "object": "file", "deleted": true})))
}

pub async fn content(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let service = service(&state)?;
    file(service, &access(caller), &id, Need::Read).await?;
    let (record, pieces) = service.file_content(&id).await?;
    let stream = pieces.map_err(std::io::Error::other);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, record.bytes.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
