//! Engines: the generation scheduler (continuous batching, sampling, stop conditions, streaming
//! detokenization) and the embedding batcher.
//!
//! Each loaded model is driven by its own OS thread, fed by a bounded channel; the thread serves
//! waiting requests of different tenants (API keys) in turn ([`fair`]). Handles are cheap
//! to clone and never block: a full queue is reported at once ([`SubmitError::QueueFull`]) and a
//! dead engine is reported as [`SubmitError::Stopped`], so callers can answer 429 or 503
//! straight away.

pub mod constrain;
pub mod detok;
pub mod embed;
pub mod error;
pub mod fair;
pub mod generate;
pub mod histogram;
pub mod sampling;
pub mod stop;

pub use embed::{EmbeddingConfig, EmbeddingEngine};
pub use error::{EngineError, SubmitError};
pub use fair::Tenant;
pub use generate::{
    FinishReason, GenerateEvent, GenerateRequest, GenerationConfig, GenerationEngine, Usage,
};
pub use sampling::SamplingParams;

/// Hands memory freed by an unloaded model back to the OS. glibc keeps freed heap pages for
/// reuse; after a model's weights are dropped that would leave the process as large as before
/// the unload, and the cache's memory accounting would not match what the OS sees.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's heaps to the OS; it takes
    // no pointers and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
