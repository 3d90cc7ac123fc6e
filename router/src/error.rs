//! The one place where an error becomes an HTTP status: [`ApiError`], in OpenAI's wire shape
//! (`{"error":{"message","type","param","code"}}`) or Ollama's (`{"error":"…"}`).
//!
//! Every failure a handler can meet becomes an [`ApiError`] with a status, a stable `type` and
//! `code`, and the request field at fault in `param`. Backend, cache, engine, validation and
//! request-context errors are mapped in one exhaustive match ([`From<BackendError>`]), so a new
//! variant has to choose its status; both wire shapes answer from that same value.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nfai_cache::CacheError;
use nfai_inference::{EngineError, SubmitError};
use nfai_retrieval::RetrievalError;
use nfai_retrieval::records::BlobError;
use serde::Serialize;

use crate::backend::error::BackendError;
use crate::context::ContextError;
use crate::responses::store::StoreError;
use crate::validate::{FieldError, FieldErrorKind};

/// An error answered to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    pub retry_after_secs: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

/// The object inside `error`, also sent as the last SSE event of a failed stream.
#[derive(Serialize)]
pub struct Detail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after_secs: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// 400 for a request field that is missing, malformed or out of range.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
            .with_param(param)
            .with_code("invalid_value")
    }

    /// 400 for a body that is not the JSON we expect.
    pub fn bad_json(message: impl Into<String>, param: Option<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message);
        e.param = param;
        e.code = Some("invalid_json");
        e
    }

    /// 400 for a feature this server does not offer.
    pub fn unsupported(param: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
            .with_param(param)
            .with_code("unsupported_parameter")
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    pub fn context_length_exceeded(param: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
            .with_param(param)
            .with_code("context_length_exceeded")
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("The request body is larger than the limit of {limit} bytes."),
        )
        .with_code("request_too_large")
    }

    pub fn not_found_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unknown route {path}."),
        )
        .with_code("unknown_url")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "Method not allowed.",
        )
        .with_code("method_not_allowed")
    }

    pub fn overloaded(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
            .with_code("queue_full");
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
            .with_code("model_unavailable");
        e.retry_after_secs = Some(5);
        e
    }

    /// 409: the resource is in a state that forbids the operation (a model still in use).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "invalid_request_error", message).with_code("conflict")
    }

    /// 403: the caller may see the object but not change it.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", message).with_code("permission_denied")
    }

    /// 401 for the admin API.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
            .with_code("invalid_admin_token")
    }

    /// 401 for a missing, malformed, unknown or expired API key.
    pub fn invalid_api_key(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
            .with_code("invalid_api_key")
    }

    /// 429 for a key over its requests or tokens per minute.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "requests", message)
            .with_code("rate_limit_exceeded");
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
            .with_code("internal_error")
    }

    /// The JSON object inside `error`.
    pub fn detail(&self) -> Detail<'_> {
        Detail {
            message: &self.message,
            kind: self.kind,
            param: self.param.as_deref(),
            code: self.code,
        }
    }

    /// `{"error": …}` as a JSON string (for SSE error events).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Body { error: self.detail() }).unwrap_or_else(|_| {
            r#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#
                .to_string()
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.to_json();
        self.respond(body)
    }
}

impl ApiError {
    /// The response in Ollama's shape, `{"error": "…"}`, with the same status.
    pub fn into_ollama_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        self.respond(body)
    }

    fn respond(self, body: String) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, code = ?self.code, "{}", self.message);
        } else {
            tracing::debug!(status = %self.status, code = ?self.code, param = ?self.param, "{}", self.message);
        }
        let mut res = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// An error answered in Ollama's shape (the Ollama routes' handlers return it).
#[derive(Debug)]
pub struct OllamaError(pub ApiError);

impl From<ApiError> for OllamaError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<BackendError> for OllamaError {
    fn from(e: BackendError) -> Self {
        Self(e.into())
    }
}

impl From<FieldError> for OllamaError {
    fn from(e: FieldError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        self.0.into_ollama_response()
    }
}

/// `/ready`'s answer: 200 when ready, else 503 (with `body` saying why).
pub fn readiness(ready: bool, body: serde_json::Value) -> Response {
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

fn server_error(status: StatusCode, code: &'static str, message: String) -> ApiError {
    ApiError::new(status, "server_error", message).with_code(code)
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        match e.kind {
            FieldErrorKind::Invalid => Self::invalid(e.param, e.message),
            FieldErrorKind::Unsupported => Self::unsupported(&e.param, e.message),
            FieldErrorKind::ContextLength => Self::context_length_exceeded(&e.param, e.message),
            FieldErrorKind::WrongModelKind => {
                Self::invalid(e.param, e.message).with_code("model_not_supported")
            }
        }
    }
}

impl From<ContextError> for ApiError {
    fn from(e: ContextError) -> Self {
        match e {
            ContextError::InvalidTimeout => Self::invalid("x-request-timeout", e.to_string()),
        }
    }
}

/// Every backend error's status and code: the one exhaustive match.
impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        let msg = e.to_string();
        match e {
            BackendError::Field(f) => f.into(),
            BackendError::ModelNotFound(model) => Self::model_not_found(&model),
            BackendError::NotServed(_) | BackendError::Unavailable(_) => Self::unavailable(msg),
            BackendError::EngineStopped(_) => Self::unavailable(msg),
            BackendError::Cache(c) => match c {
                CacheError::UnknownModel(m) => Self::model_not_found(&m),
                CacheError::LoadFailed { .. } => {
                    Self::unavailable(msg).with_code("model_load_failed")
                }
                CacheError::InsufficientMemory { .. } | CacheError::TooManyLoaded { .. } => {
                    Self::unavailable(msg).with_code("insufficient_memory")
                }
                CacheError::TooManyWaiters { .. } => {
                    Self::unavailable(msg).with_code("too_many_waiters")
                }
                CacheError::Busy { .. } => Self::conflict(msg).with_code("model_busy"),
                CacheError::Stopped => Self::unavailable(msg),
            },
            BackendError::Submit(s) => match s {
                SubmitError::QueueFull { .. } | SubmitError::Busy { .. } => Self::overloaded(
                    format!("The server is busy: {msg}. Retry after a short wait."),
                    1,
                ),
                SubmitError::Stopped => Self::unavailable(msg),
                SubmitError::Invalid(m) => Self::invalid("messages", m),
            },
            BackendError::Engine(en) => match en {
                EngineError::Input(m) => Self::invalid("input", m),
                EngineError::Compute(m) => Self::internal(format!("The model failed: {m}")),
                EngineError::Stopped => Self::unavailable(msg),
                EngineError::DeadlinePassed => BackendError::DeadlineExceeded.into(),
            },
            BackendError::DeadlineExceeded => {
                server_error(StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded", msg)
            }
            BackendError::UpstreamTimeout(_) => {
                server_error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", msg)
            }
            BackendError::Upstream(_) => {
                server_error(StatusCode::BAD_GATEWAY, "upstream_error", msg)
            }
            BackendError::UpstreamStatus { status, message } => match status {
                404 => {
                    let mut e = Self::model_not_found("");
                    e.message = message;
                    e
                }
                s => Self::new(
                    StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_GATEWAY),
                    "invalid_request_error",
                    message,
                ),
            },
            BackendError::Busy(_) => Self::overloaded(msg, 1),
            BackendError::Internal(_) => Self::internal(msg),
        }
    }
}

/// Every retrieval error's status: the one exhaustive match for files and vector stores.
impl From<RetrievalError> for ApiError {
    fn from(e: RetrievalError) -> Self {
        let msg = e.to_string();
        let bad = |param: &str| Self::invalid(param.to_owned(), msg.clone());
        match &e {
            RetrievalError::Missing { .. } | RetrievalError::NotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "invalid_request_error", msg)
                    .with_code("not_found")
            }
            RetrievalError::AlreadyExists(_) => Self::conflict(msg).with_code("already_exists"),
            RetrievalError::InvalidName { .. } => bad("vector_store_id"),
            RetrievalError::InvalidFilter { .. } => bad("filters").with_code("invalid_filter"),
            RetrievalError::AttributeType { .. } => bad("attributes"),
            RetrievalError::InvalidVector(_) => bad("query"),
            RetrievalError::InvalidArgument { field, .. } => bad(field),
            RetrievalError::ModelMismatch { .. } => bad("embedding_model"),
            RetrievalError::Unavailable(_) => {
                Self::unavailable(msg).with_code("vector_store_unavailable")
            }
            RetrievalError::Storage(_) => Self::unavailable(msg).with_code("storage_error"),
            RetrievalError::Timeout(_) => {
                server_error(StatusCode::GATEWAY_TIMEOUT, "vector_store_timeout", msg)
            }
        }
    }
}

/// An upload that cannot be stored: too large (413) or a disk or database fault (503).
impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::TooLarge { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!(
                    "The file is larger than the limit of {limit} bytes (`[files] max_bytes`)."
                ),
            )
            .with_param("file")
            .with_code("file_too_large"),
            BlobError::Io(m) => {
                Self::unavailable(format!("Cannot store the file: {m}")).with_code("storage_error")
            }
            // Bytes a record names that are gone: the store's fault, not the caller's.
            e @ BlobError::Missing(_) => {
                Self::unavailable(format!("Cannot read the file: {e}")).with_code("storage_error")
            }
        }
    }
}

/// A fault of the stored responses' files: 503, the cause in the logs' message.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io(_) | StoreError::Corrupt(_) | StoreError::Task(_) => {
                Self::unavailable(format!("Cannot reach the stored responses: {e}"))
                    .with_code("storage_error")
            }
        }
    }
}

impl From<CacheError> for ApiError {
    fn from(e: CacheError) -> Self {
        BackendError::Cache(e).into()
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        BackendError::Submit(e).into()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        BackendError::Engine(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: BackendError) -> u16 {
        ApiError::from(e).status.as_u16()
    }

    /// `is_retryable` agrees with the status each error is answered with.
    #[test]
    fn retryable_errors_are_the_429_408_and_5xx_ones() {
        let all = [
            BackendError::Field(FieldError::invalid("x", "bad")),
            BackendError::ModelNotFound("m".into()),
            BackendError::NotServed("m".into()),
            BackendError::Cache(CacheError::UnknownModel("m".into())),
            BackendError::Cache(CacheError::Busy {
                model: "m".into(),
                in_flight: 1,
            }),
            BackendError::Cache(CacheError::Stopped),
            BackendError::Submit(SubmitError::QueueFull { capacity: 1 }),
            BackendError::Submit(SubmitError::Busy {
                expected_ms: 900,
                bound_ms: 300,
            }),
            BackendError::Submit(SubmitError::Invalid("x".into())),
            BackendError::Engine(EngineError::Input("x".into())),
            BackendError::Engine(EngineError::Compute("x".into())),
            BackendError::Engine(EngineError::DeadlinePassed),
            BackendError::EngineStopped("x".into()),
            BackendError::DeadlineExceeded,
            BackendError::UpstreamTimeout("x".into()),
            BackendError::Upstream("x".into()),
            BackendError::UpstreamStatus {
                status: 400,
                message: "x".into(),
            },
            BackendError::UpstreamStatus {
                status: 404,
                message: "x".into(),
            },
            BackendError::UpstreamStatus {
                status: 408,
                message: "x".into(),
            },
            BackendError::Busy("x".into()),
            BackendError::Unavailable("x".into()),
            BackendError::Internal("x".into()),
        ];
        for e in all {
            let s = status(e.clone());
            assert_eq!(e.is_retryable(), s == 429 || s == 408 || s >= 500, "{e:?}");
        }
    }

    #[test]
    fn deadlines_are_504_with_one_code() {
        let a = ApiError::from(BackendError::DeadlineExceeded);
        let b = ApiError::from(EngineError::DeadlinePassed);
        assert_eq!(
            (a.status.as_u16(), a.code),
            (504, Some("deadline_exceeded"))
        );
        assert_eq!((b.status, b.code), (a.status, a.code));
        let e = ApiError::from(ContextError::InvalidTimeout);
        assert_eq!(
            (e.status.as_u16(), e.param.as_deref()),
            (400, Some("x-request-timeout"))
        );
    }

    #[test]
    fn upstream_statuses_keep_theirs() {
        let e = ApiError::from(BackendError::UpstreamStatus {
            status: 404,
            message: "gone".into(),
        });
        assert_eq!(
            (e.status.as_u16(), e.code, e.message.as_str()),
            (404, Some("model_not_found"), "gone")
        );
        let e = ApiError::from(BackendError::UpstreamStatus {
            status: 422,
            message: "no".into(),
        });
        assert_eq!((e.status.as_u16(), e.code, e.param), (422, None, None));
        assert_eq!(
            ApiError::from(BackendError::Busy("x".into())).retry_after_secs,
            Some(1)
        );
        let e = ApiError::from(BackendError::Submit(SubmitError::Busy {
            expected_ms: 900,
            bound_ms: 300,
        }));
        assert_eq!((e.status.as_u16(), e.retry_after_secs), (429, Some(1)));
        assert!(e.message.contains("900 ms"), "{}", e.message);
    }
}
