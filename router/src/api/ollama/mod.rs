//! nfai answering Ollama's API (`/api/chat`, `/api/generate`, `/api/embed`, `/api/embeddings`,
//! `/api/tags`, `/api/ps`, `/api/version`, `/api/show`), so an Ollama client can point at nfai
//! unchanged.
//!
//! Its typed wire types are in [`wire`]; requests convert into `crate::validate`'s types and
//! resolve through the same route table and `Backend` calls as the OpenAI handlers. Generation
//! streams NDJSON by default (`"stream": false` gives one JSON); errors are Ollama's
//! `{"error": "…"}` with the same status codes as the OpenAI API (`crate::error::OllamaError`).

pub mod extract;
mod generate;
mod info;
mod show;
pub mod wire;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// The Ollama routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/chat", post(generate::chat))
        .route("/api/generate", post(generate::generate))
        .route("/api/embed", post(info::embed))
        .route("/api/embeddings", post(info::embeddings))
        .route("/api/tags", get(info::tags))
        .route("/api/ps", get(info::ps))
        .route("/api/version", get(info::version))
        .route("/api/show", post(show::show))
}
