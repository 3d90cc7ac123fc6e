//! Where uploaded files' bytes live, behind one object-safe trait ([`Blobs`]): the data
//! directory ([`super::BlobDir`]) or PostgreSQL ([`super::PgBlobs`]).
//!
//! An upload streams through a [`BlobWriter`] that refuses to grow past its limit; only
//! [`BlobWriter::commit`] makes the bytes visible under their id, so a crash or an aborted
//! upload never leaves a partial file under a real id.

use futures::future::BoxFuture;
use futures::stream::BoxStream;

/// Why bytes could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The upload is larger than `[files] max_bytes`.
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// No bytes are stored under this id.
    #[error("no bytes are stored for `{0}`")]
    Missing(String),
    /// The disk is full, a file operation failed or the database is unreachable.
    #[error("cannot store the file: {0}")]
    Io(String),
}

/// `Ok` for an id that can name stored bytes (see `safe_id`).
pub(crate) fn check_blob_id(id: &str) -> Result<(), BlobError> {
    if super::safe_id(id) {
        Ok(())
    } else {
        Err(BlobError::Io(format!("`{id}` is not a valid file id")))
    }
}

/// The pieces of a stored file, in order.
pub type BlobStream = BoxStream<'static, Result<Vec<u8>, BlobError>>;

/// A store of file bytes by id. Ids are record ids (see `safe_id`).
pub trait Blobs: Send + Sync + std::fmt::Debug + 'static {
    /// Starts an upload of at most `limit` bytes for `id`. Committing replaces any bytes
    /// already stored under `id`.
    fn begin<'a>(&'a self, id: &'a str, limit: u64)
    -> BoxFuture<'a, Result<BlobWriter, BlobError>>;
    /// A stored file whole.
    fn read<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<u8>, BlobError>>;
    /// A stored file as a stream of pieces, for sending it without holding it whole.
    fn stream<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<BlobStream, BlobError>>;
    /// Deletes a stored file's bytes; a missing file is not an error.
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BlobError>>;
}

/// One backend's upload in progress; wrapped by [`BlobWriter`], which keeps the limit.
pub trait BlobSink: Send {
    /// Appends a piece.
    fn append<'a>(&'a mut self, bytes: &'a [u8]) -> BoxFuture<'a, Result<(), BlobError>>;
    /// Makes the bytes durable and visible under their id.
    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<(), BlobError>>;
}

/// An upload in progress. Dropped without [`BlobWriter::commit`], it leaves nothing behind.
pub struct BlobWriter {
    sink: Option<Box<dyn BlobSink>>,
    written: u64,
    limit: u64,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("written", &self.written)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl BlobWriter {
    /// Wraps a backend's sink with the upload's size limit.
    pub fn new(sink: Box<dyn BlobSink>, limit: u64) -> Self {
        Self {
            sink: Some(sink),
            written: 0,
            limit,
        }
    }

    /// Appends a piece of the upload; past the limit, [`BlobError::TooLarge`].
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        let total = self.written.saturating_add(bytes.len() as u64);
        if total > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        let sink = self
            .sink
            .as_mut()
            .ok_or_else(|| BlobError::Io("the upload was already committed".into()))?;
        sink.append(bytes).await?;
        self.written = total;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Makes the upload durable under its id; returns its size.
    pub async fn commit(mut self) -> Result<u64, BlobError> {
        let sink = self
            .sink
            .take()
            .ok_or_else(|| BlobError::Io("the upload was already committed".into()))?;
        sink.finish().await?;
        Ok(self.written)
    }
}
