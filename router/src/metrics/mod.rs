//! Request metrics: the families every request adds to ([`Metrics`]), the per-request
//! [`record::RequestRecord`] the layers fill in, and [`Collector`], through which other
//! components (retrieval, its caches) add families of their own to `/metrics`.
//!
//! A leaf module: it imports none of the router's layers, so any of them may record into it.

pub mod family;
pub mod record;
mod registry;

pub use family::{CounterVec, Exposition, HistogramVec};
pub use record::RequestRecord;
pub use registry::{Collector, Metrics};
