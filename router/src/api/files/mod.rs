//! OpenAI's Files API: `POST`/`GET /v1/files`, `GET`/`DELETE /v1/files/{id}` and
//! `GET /v1/files/{id}/content`, over the retrieval service. `common` is shared with the
//! vector store routes.

pub mod access;
pub mod common;
pub mod handlers;
pub mod upload;
pub mod wire;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

use crate::state::AppState;

/// The file routes; an upload may be up to `max_file_bytes` plus the form's overhead.
pub fn routes(max_file_bytes: u64) -> Router<AppState> {
    let upload_limit = usize::try_from(max_file_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(upload::FORM_OVERHEAD_BYTES);
    Router::new()
        .route(
            "/v1/files",
            get(handlers::list_files)
                .post(upload::create)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/v1/files/{id}",
            get(handlers::get).delete(handlers::delete),
        )
        .route("/v1/files/{id}/content", get(handlers::content))
}
