//! Pooled PostgreSQL access: a deadpool-postgres pool with timeouts, recycling checks, a
//! statement mode chosen by config, and pool and query metrics.
//!
//! - [`PgConfig`] (`config`): URL, pool size, wait/create/recycle timeouts, [`StatementMode`],
//!   [`Recycling`].
//! - [`PgPool`] (`pool`): checkout with a bounded wait, typed queries in the configured mode.
//! - [`PgMetrics`] (`metrics`): counters and latency histograms; [`PgPoolSnapshot`] for export.
//! - [`PgError`] (`error`): exhausted, unavailable, query and config failures.

mod config;
mod error;
mod metrics;
mod pool;

pub use config::{PgConfig, Recycling, StatementMode};
pub use error::PgError;
pub use metrics::{HistogramSnapshot, LATENCY_BUCKETS_SECONDS, PgMetrics, PgPoolSnapshot};
pub use pool::{Param, PgConn, PgPool};
/// The error of reading a column of a [`Row`] (`Row::try_get`).
pub use tokio_postgres::Error as PgReadError;
pub use tokio_postgres::Row;
pub use tokio_postgres::types::{ToSql, Type};
