//! nfai's model cache: which models are resident on which device.
//!
//! Swapping models is the normal case on an 8 GB GPU or a laptop's RAM. The cache loads each
//! model once however many requests wait for it (single flight, on a blocking thread), keeps
//! every device within a byte budget and a model count by evicting idle models in
//! least-recently-used order, unloads idle models when their keep-alive runs out, never evicts a
//! model that is pinned or leased, and never fails a caller because a load is in flight.
//!
//! - [`ModelCache`] is the clonable handle: [`ModelCache::acquire`] returns a [`Lease`] that
//!   derefs to the model; dropping the lease is all a caller does.
//! - The router implements [`Loader`] (estimate, load, unload) over its engines.
//! - One actor task owns the state (`state/`, plain data, unit-tested without the actor).
//!
//! Modules: `spec` (devices, model specs, the loader trait), `config` (budgets and call
//! options), `keep_alive`, `lease`, `state` (residency state machine and memory accounting),
//! `actor`, `cache` (the handle), `status` and `metrics` (snapshots), `memory` (the default
//! host budget), `error`.

#![forbid(unsafe_code)]

mod actor;
mod cache;
mod config;
mod error;
mod keep_alive;
mod lease;
mod memory;
mod metrics;
mod spec;
mod state;
mod status;

pub use cache::ModelCache;
pub use config::{AcquireOptions, CacheConfig, LoadOptions, UnloadOptions};
pub use error::CacheError;
pub use keep_alive::KeepAlive;
pub use lease::Lease;
pub use memory::{FALLBACK_AVAILABLE_BYTES, default_cpu_budget};
pub use metrics::{
    CacheMetrics, DeviceMetrics, EvictionCounts, EvictionReason, Histogram, LOAD_SECONDS_BUCKETS,
    ModelCounters, ModelMetrics,
};
pub use spec::{DeviceId, Loader, ModelSpec};
pub use status::{DeviceMemory, ModelState, ModelStatus};
