//! nfai answering Ollama's API (`/api/chat`, `/api/generate`, `/api/embed`, `/api/embeddings`,
//! `/api/tags`, `/api/ps`, `/api/version`), so an Ollama client can point at nfai unchanged.
//!
//! Requests resolve through the same route table and [`crate::backend::Backend`] calls as the
//! OpenAI handlers. Generation streams NDJSON by default (`"stream": false` gives one JSON);
//! errors are Ollama's `{"error": "…"}` with the same status codes as the OpenAI API.

mod generate;
mod info;
mod show;
pub mod wire;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::ApiError;
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

/// An error in Ollama's shape.
#[derive(Debug)]
pub struct OllamaError(pub ApiError);

impl From<ApiError> for OllamaError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.0.message }).to_string();
        (
            self.0.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

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
        let crate::json::OpenAiJson(v) =
            crate::json::OpenAiJson::<T>::from_request(req, state).await?;
        Ok(Self(v))
    }
}

/// Resolves an Ollama model name: as given, else without its `:latest` tag.
pub(crate) fn route(state: &AppState, name: &str) -> Result<crate::state::Route, ApiError> {
    state
        .route(name)
        .or_else(|e| match name.strip_suffix(":latest") {
            Some(base) => state.route(base),
            None => Err(e),
        })
}

/// RFC 3339 UTC time of a Unix timestamp in nanoseconds.
pub fn rfc3339(unix_nanos: u128) -> String {
    let secs = (unix_nanos / 1_000_000_000) as i64;
    let nanos = (unix_nanos % 1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// Now, in RFC 3339.
pub fn now_rfc3339() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    rfc3339(nanos)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            super::rfc3339(1_691_164_339_385_406_455),
            "2023-08-04T15:52:19.385406455Z"
        );
        assert_eq!(
            super::rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}
