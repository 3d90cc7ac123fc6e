//! Durable records of the retrieval service behind one async, object-safe trait
//! ([`Records`]): uploaded files, vector stores, store files (the ingestion jobs) and
//! batches, and the files' bytes behind another ([`Blobs`]). [`DirRecords`] and [`BlobDir`]
//! keep them in the data directory (one node); [`PgRecords`] and [`PgBlobs`] in PostgreSQL,
//! shared by every replica of the database.
//!
//! The trait stores and reads whole records; ordering, pagination and derived counts are the
//! service's. Every `put_*` is durable when it returns (a crash never leaves half a record).

mod blob_dir;
mod blobs;
mod dir;
mod pg;
mod types;

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

pub use blob_dir::BlobDir;
pub use blobs::{BlobError, BlobSink, BlobStream, BlobWriter, Blobs};
pub use dir::DirRecords;
pub use pg::{PART_BYTES, PgBlobs, PgHandle, PgRecords};
pub use types::{BatchRecord, FileRecord, FileStatus, LastError, StoreFileRecord, StoreRecord};

use crate::error::Result;

/// Ids become file names: only ASCII letters, digits, `-`, `_`, `:` (source rows are
/// `<source>:<row id>`), `.` and `@`, not starting with `.`.
pub(crate) fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.' | b'@'))
}

/// `Ok` for a record id [`safe_id`] accepts; else the 400 that names it.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if safe_id(id) {
        Ok(())
    } else {
        Err(crate::error::RetrievalError::InvalidArgument {
            field: "id",
            reason: format!(
                "`{id}` may hold only ASCII letters, digits, `-`, `_`, `:`, `.` and `@`, and may not start with `.`"
            ),
        })
    }
}

/// Where the records live. Implementations: [`DirRecords`] (the data directory) and
/// [`PgRecords`] (PostgreSQL).
pub trait Records: Send + Sync + std::fmt::Debug + 'static {
    /// Creates or replaces an uploaded file's record.
    fn put_file(&self, file: FileRecord) -> BoxFuture<'_, Result<()>>;
    fn get_file<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<FileRecord>>>;
    /// Every uploaded file, in no particular order.
    fn list_files(&self) -> BoxFuture<'_, Result<Vec<FileRecord>>>;
    /// Deletes a file's record; `false` if there was none.
    fn delete_file<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>>;

    /// Creates or replaces a vector store's record.
    fn put_store(&self, store: StoreRecord) -> BoxFuture<'_, Result<()>>;
    fn get_store<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<StoreRecord>>>;
    /// Every vector store, in no particular order.
    fn list_stores(&self) -> BoxFuture<'_, Result<Vec<StoreRecord>>>;
    /// Deletes a store with its store files and batches; `false` if there was none.
    fn delete_store<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>>;

    /// Creates or replaces a store file's record.
    fn put_store_file(&self, file: StoreFileRecord) -> BoxFuture<'_, Result<()>>;
    fn get_store_file<'a>(
        &'a self,
        store_id: &'a str,
        file_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoreFileRecord>>>;
    /// Every file of a store, in no particular order.
    fn list_store_files<'a>(
        &'a self,
        store_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoreFileRecord>>>;
    /// Deletes a store file's record; `false` if there was none.
    fn delete_store_file<'a>(
        &'a self,
        store_id: &'a str,
        file_id: &'a str,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Store files still `in_progress` in any store: the ingestion jobs to (re)run.
    fn pending_store_files(&self) -> BoxFuture<'_, Result<Vec<StoreFileRecord>>>;

    /// Creates or replaces a batch's record.
    fn put_batch(&self, batch: BatchRecord) -> BoxFuture<'_, Result<()>>;
    fn get_batch<'a>(
        &'a self,
        store_id: &'a str,
        batch_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<BatchRecord>>>;

    /// Whether other processes write these records too (replicas sharing a database): then
    /// what one process caches about a store may be stale.
    fn shared(&self) -> bool {
        false
    }

    /// Takes the right to run a store file's ingestion at its revision for `lease`; `false`
    /// while another holder's lease on it lasts. Records of one process grant it always (the
    /// service already runs each job once).
    fn claim_job<'a>(
        &'a self,
        _file: &'a StoreFileRecord,
        _holder: &'a str,
        _lease: Duration,
    ) -> BoxFuture<'a, Result<bool>> {
        async { Ok(true) }.boxed()
    }

    /// Gives up a claim taken with [`Records::claim_job`].
    fn release_job<'a>(
        &'a self,
        _store_id: &'a str,
        _file_id: &'a str,
        _holder: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        async { Ok(()) }.boxed()
    }
}
