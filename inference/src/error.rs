//! Errors of the engines, as seen by their callers.

/// Why a request could not be queued.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    /// The admission queue is full; try again shortly.
    #[error("the model's queue is full ({capacity} requests waiting)")]
    QueueFull { capacity: usize },
    /// Every batch slot is taken and a new request would wait longer than the engine's bound
    /// for one (the requests ahead of it, at the recent time a sequence spends in the batch);
    /// try again shortly.
    #[error(
        "the model is busy: a new request would wait about {expected_ms} ms for a slot, over its bound of {bound_ms} ms"
    )]
    Busy { expected_ms: u64, bound_ms: u64 },
    /// The engine thread is gone.
    #[error("the model's engine has stopped")]
    Stopped,
    /// The request breaks an invariant the caller should have checked.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Why a queued request failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    /// The forward pass or sampling failed; the message comes from the model code.
    #[error("model computation failed: {0}")]
    Compute(String),
    /// The request cannot run on this model (for example a token id out of range).
    #[error("invalid input: {0}")]
    Input(String),
    /// The engine stopped while the request was in flight.
    #[error("the model's engine stopped while the request was running")]
    Stopped,
    /// The request's deadline passed before the generation finished.
    #[error("the request's deadline passed before the answer was complete")]
    DeadlinePassed,
}

impl From<nfai_models::ModelError> for EngineError {
    fn from(e: nfai_models::ModelError) -> Self {
        match e {
            nfai_models::ModelError::Input(m) => Self::Input(m),
            other => Self::Compute(other.to_string()),
        }
    }
}
