//! OpenAI's Vector Stores API over the retrieval service: stores (`stores`), their files
//! (`files`), file batches (`batches`) and search (`search`); the objects in `wire`.

pub mod batches;
pub mod files;
pub mod search;
pub mod stores;
pub mod wire;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// The vector store routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/vector_stores",
            get(stores::list_stores).post(stores::create),
        )
        .route(
            "/v1/vector_stores/{id}",
            get(stores::get).post(stores::modify).delete(stores::delete),
        )
        .route("/v1/vector_stores/{id}/search", post(search::search))
        .route(
            "/v1/vector_stores/{id}/files",
            get(files::list_files).post(files::create),
        )
        .route(
            "/v1/vector_stores/{id}/files/{file_id}",
            get(files::get).post(files::update).delete(files::delete),
        )
        .route(
            "/v1/vector_stores/{id}/files/{file_id}/content",
            get(files::content),
        )
        .route("/v1/vector_stores/{id}/file_batches", post(batches::create))
        .route(
            "/v1/vector_stores/{id}/file_batches/{batch_id}",
            get(batches::get),
        )
        .route(
            "/v1/vector_stores/{id}/file_batches/{batch_id}/cancel",
            post(batches::cancel),
        )
        .route(
            "/v1/vector_stores/{id}/file_batches/{batch_id}/files",
            get(batches::list_files),
        )
}
