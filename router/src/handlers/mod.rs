//! HTTP handlers, one module per API.

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod health;
pub mod models;

use crate::error::ApiError;

/// Runs CPU-bound request preparation (templating, tokenization) off the async workers.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("request preparation failed: {e}")))?
}
