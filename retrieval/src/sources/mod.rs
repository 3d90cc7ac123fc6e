//! CRM records from PostgreSQL into vector stores: each `[[retrieval.sources]]` entry is a
//! parameterised query whose rows become store files `<source>:<row id>`.
//!
//! - [`SourceConfig`] (`config`): the typed config entry, validated.
//! - `query`: the page and id-list statements built from the query's columns (values only
//!   ever bound as parameters).
//! - [`sync_once`] (`sync`): one incremental pass on a lagged `(updated_at, id)` keyset, with
//!   idempotent upserts and deletes (a `deleted_at` column or a key-set diff).
//! - [`CheckpointDir`] (`checkpoint`): the keyset position, saved after every page.
//! - [`SourceRunner`] (`runner`): per-source tasks, on request or periodic; pause and resume.
//! - [`SourceStatus`] (`status`): progress and state of each source.

mod checkpoint;
mod config;
mod query;
mod runner;
mod status;
mod sync;

pub use checkpoint::{Checkpoint, CheckpointDir};
pub use config::{MAX_ATTRIBUTE_COLUMNS, SourceConfig, is_identifier};
pub use query::{IdKind, SourceQuery, SourceRow};
pub use runner::SourceRunner;
pub use status::{Progress, SourceStatus, SyncState};
pub use sync::{SyncError, file_id, filename, plan, read_rows, resolve_store, sync_once};
