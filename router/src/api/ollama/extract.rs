//! What the Ollama handlers share: the JSON body extractor whose rejections answer in Ollama's
//! error shape, and model-name resolution with Ollama's `:latest` tag.

use crate::api::json::OpenAiJson;
use crate::backend::error::BackendError;
use crate::error::OllamaError;
use crate::state::{AppState, Route};

/// The JSON body extractor of the Ollama routes: rejections in Ollama's error shape.
#[derive(Debug)]
pub struct OllamaJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for OllamaJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = OllamaError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let OpenAiJson(v) = OpenAiJson::<T>::from_request(req, state).await?;
        Ok(Self(v))
    }
}

/// Resolves an Ollama model name: as given, else without its `:latest` tag.
pub(crate) fn route(state: &AppState, name: &str) -> Result<Route, BackendError> {
    state
        .route(name)
        .or_else(|e| match name.strip_suffix(":latest") {
            Some(base) => state.route(base),
            None => Err(e),
        })
}
