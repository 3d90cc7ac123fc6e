//! `POST /v1/files`: a multipart upload (`file`, `purpose`) streamed to disk piece by piece,
//! never whole in memory. A file over `[files] max_bytes` is a 413; the route's own body limit
//! is that size plus room for the other fields, separate from the JSON body limit.

use axum::extract::multipart::MultipartError;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::Value;

use super::common::service;
use super::wire;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Room for the multipart framing and the `purpose` field beyond the file's bytes.
pub const FORM_OVERHEAD_BYTES: usize = 1024 * 1024;
/// Longest `purpose` field read.
const MAX_PURPOSE_BYTES: usize = 64;

fn multipart_error(e: &MultipartError, limit: u64) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return nfai_retrieval::records::BlobError::TooLarge { limit }.into();
    }
    ApiError::invalid(
        "file",
        format!("Malformed multipart body: {}", e.body_text()),
    )
}

pub async fn create(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    let limit = service.options().max_file_bytes;
    let mut form = multipart.map_err(|e| {
        ApiError::invalid("file", format!("Expected a multipart/form-data body: {e}"))
    })?;
    let mut purpose: Option<String> = None;
    let mut upload = None;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(&e, limit))?
    {
        match field.name() {
            Some("purpose") => {
                let text = field.text().await.map_err(|e| multipart_error(&e, limit))?;
                if text.len() > MAX_PURPOSE_BYTES {
                    return Err(ApiError::invalid("purpose", "'purpose' is too long."));
                }
                purpose = Some(text);
            }
            Some("file") => {
                if upload.is_some() {
                    return Err(ApiError::invalid(
                        "file",
                        "Only one 'file' may be uploaded.",
                    ));
                }
                let filename = field.file_name().map(str::to_owned).ok_or_else(|| {
                    ApiError::invalid("file", "The 'file' part has no file name.")
                })?;
                let content_type = field.content_type().map(str::to_owned);
                let (id, mut writer) = service.begin_upload().await?;
                while let Some(piece) = field
                    .chunk()
                    .await
                    .map_err(|e| multipart_error(&e, limit))?
                {
                    if let Err(e) = writer.write(&piece).await {
                        // Read the rest (bounded by the route's body limit) so that the client
                        // gets the 413 rather than a reset connection.
                        while let Ok(Some(_)) = field.chunk().await {}
                        return Err(e.into());
                    }
                }
                upload = Some((id, writer, filename, content_type));
            }
            // Unknown fields are read and ignored, as OpenAI does.
            _ => {
                while field
                    .chunk()
                    .await
                    .map_err(|e| multipart_error(&e, limit))?
                    .is_some()
                {}
            }
        }
    }
    let (id, writer, filename, content_type) =
        upload.ok_or_else(|| ApiError::invalid("file", "Missing required parameter: 'file'."))?;
    let purpose = purpose
        .ok_or_else(|| ApiError::invalid("purpose", "Missing required parameter: 'purpose'."))?;
    let record = service
        .finish_upload(
            id,
            writer,
            filename,
            purpose,
            content_type,
            super::access::access(caller).owner(),
        )
        .await?;
    Ok(Json(wire::file(record)))
}
