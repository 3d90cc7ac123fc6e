//! [`CacheError`], every way a cache call can fail.

use crate::DeviceId;

/// Why a cache call failed. Clone-able: one load failure reaches every waiter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The id is not in the cache's model list.
    #[error("model {0:?} is not known to the cache")]
    UnknownModel(String),
    /// The load (or its size estimate) failed; the next acquire retries.
    #[error("loading model {model:?} failed: {cause}")]
    LoadFailed { model: String, cause: String },
    /// The model does not fit on its device even after evicting every idle, unpinned model;
    /// nothing was evicted.
    #[error(
        "model {model:?} needs {needed} bytes on {device} but at most {available} can be made \
         available (the rest is held by pinned, leased or loading models)"
    )]
    InsufficientMemory {
        model: String,
        device: DeviceId,
        needed: u64,
        available: u64,
    },
    /// The device already holds `limit` models that cannot be evicted; nothing was evicted.
    #[error(
        "model {model:?} cannot be loaded on {device}: {limit} models are resident there and \
         none can be evicted"
    )]
    TooManyLoaded {
        model: String,
        device: DeviceId,
        limit: usize,
    },
    /// Too many callers already wait for this model's load.
    #[error("too many requests are waiting for model {model:?} to load (limit {limit})")]
    TooManyWaiters { model: String, limit: usize },
    /// An unload waited `timeout` and leases were still held.
    #[error("model {model:?} is still in use by {in_flight} request(s); unload timed out")]
    Busy { model: String, in_flight: usize },
    /// The cache's actor is gone (its runtime shut down or it panicked).
    #[error("the model cache has stopped")]
    Stopped,
}
