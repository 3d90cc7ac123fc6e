//! [`BackendError`]: every way a backend (native engines, an upstream, a route over several)
//! can fail a request. The HTTP status of each variant is decided in `crate::error`, in one
//! exhaustive match; here only whether another target may succeed.

use nfai_cache::CacheError;
use nfai_inference::{EngineError, SubmitError};

use crate::validate::FieldError;

/// Why a backend could not serve a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// A request field the backend found wrong (a prompt too long for the context, say).
    #[error(transparent)]
    Field(#[from] FieldError),
    /// No model or route has this name.
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// The model is in the catalog but this instance does not serve it.
    #[error("The model `{0}` is in the catalog but not served by this instance.")]
    NotServed(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The engine went away before it answered.
    #[error("{0}")]
    EngineStopped(String),
    /// The request's deadline (`x-request-timeout`) passed.
    #[error("The request's deadline (x-request-timeout) passed before the answer was complete.")]
    DeadlineExceeded,
    /// An upstream, or the route over them, ran out of time.
    #[error("{0}")]
    UpstreamTimeout(String),
    /// An upstream failed or answered something unusable.
    #[error("{0}")]
    Upstream(String),
    /// An upstream answered a non-2xx status other than 429 and 5xx (which are
    /// [`BackendError::Busy`] and [`BackendError::Upstream`]).
    #[error("{message}")]
    UpstreamStatus { status: u16, message: String },
    /// Every node is at its concurrency limit, or an upstream answered 429.
    #[error("{0}")]
    Busy(String),
    /// No target can take requests now.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an impossible state.
    #[error("{0}")]
    Internal(String),
}

impl BackendError {
    /// Whether another node or target may succeed where this attempt failed: the errors
    /// answered 429, 408 or 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            BackendError::Field(_)
            | BackendError::ModelNotFound(_)
            | BackendError::Cache(CacheError::UnknownModel(_) | CacheError::Busy { .. })
            | BackendError::Submit(SubmitError::Invalid(_))
            | BackendError::Engine(EngineError::Input(_)) => false,
            BackendError::UpstreamStatus { status, .. } => *status == 408,
            BackendError::NotServed(_)
            | BackendError::Cache(
                CacheError::LoadFailed { .. }
                | CacheError::InsufficientMemory { .. }
                | CacheError::TooManyLoaded { .. }
                | CacheError::TooManyWaiters { .. }
                | CacheError::Stopped,
            )
            | BackendError::Submit(
                SubmitError::QueueFull { .. } | SubmitError::Busy { .. } | SubmitError::Stopped,
            )
            | BackendError::Engine(
                EngineError::Compute(_) | EngineError::Stopped | EngineError::DeadlinePassed,
            )
            | BackendError::EngineStopped(_)
            | BackendError::DeadlineExceeded
            | BackendError::UpstreamTimeout(_)
            | BackendError::Upstream(_)
            | BackendError::Busy(_)
            | BackendError::Unavailable(_)
            | BackendError::Internal(_) => true,
        }
    }
}
