//! The OpenAI-compatible API: `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` and
//! `/v1/models`. Its wire types are in [`wire`], the SSE writer in [`stream`]; errors answer in
//! OpenAI's shape.

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod models;
pub mod stream;
pub mod tool_calls;
pub mod wire;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// The OpenAI routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat::handler))
        .route("/v1/completions", post(completions::handler))
        .route("/v1/embeddings", post(embeddings::handler))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::get))
}
