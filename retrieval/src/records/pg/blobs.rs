//! [`PgBlobs`]: uploaded files' bytes in PostgreSQL, as numbered parts of at most
//! [`PART_BYTES`], so that every replica sharing the database can serve and ingest any file.
//!
//! An upload writes its parts under a fresh upload key as they arrive; committing points the
//! file id at that key (and drops the parts of the bytes it replaces) in one statement, so a
//! reader sees the old bytes or the new ones, never a mix. Parts of an upload that never
//! commits are removed when its writer is dropped, and by a sweep at start for any a crash
//! left behind.

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::schema::PgHandle;
use crate::pg::{PgError, Row, Type};
use crate::records::blobs::check_blob_id;
use crate::records::{BlobError, BlobSink, BlobStream, BlobWriter, Blobs};

/// Largest part stored in one row.
pub const PART_BYTES: usize = 1024 * 1024;

/// The bytes in a PostgreSQL database; cheap to clone.
#[derive(Debug, Clone)]
pub struct PgBlobs {
    db: PgHandle,
}

fn db_error(e: PgError) -> BlobError {
    BlobError::Io(format!("files database: {e}"))
}

fn column<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    name: &str,
) -> Result<T, BlobError> {
    row.try_get(name)
        .map_err(|e| BlobError::Io(format!("files database: {e}")))
}

impl PgBlobs {
    /// The bytes in `db`'s database (tables made on first use).
    pub fn new(db: PgHandle) -> Self {
        Self { db }
    }

    /// The upload key and part count the id points at.
    async fn head(&self, id: &str) -> Result<(String, i32), BlobError> {
        check_blob_id(id)?;
        let rows = self
            .db
            .query(
                "SELECT upload, parts FROM nfai_blobs WHERE id = $1",
                &[(&id, Type::TEXT)],
            )
            .await
            .map_err(db_error)?;
        let row = rows
            .first()
            .ok_or_else(|| BlobError::Missing(id.to_owned()))?;
        Ok((column(row, "upload")?, column(row, "parts")?))
    }
}

async fn part(db: &PgHandle, id: &str, upload: &str, seq: i32) -> Result<Vec<u8>, BlobError> {
    let rows = db
        .query(
            "SELECT data FROM nfai_blob_parts WHERE upload = $1 AND seq = $2",
            &[(&upload, Type::TEXT), (&seq, Type::INT4)],
        )
        .await
        .map_err(db_error)?;
    match rows.first() {
        Some(row) => column(row, "data"),
        // Replaced or deleted while being read.
        None => Err(BlobError::Io(format!(
            "the bytes of {id} changed while being read"
        ))),
    }
}

impl Blobs for PgBlobs {
    fn begin<'a>(
        &'a self,
        id: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, Result<BlobWriter, BlobError>> {
        async move {
            check_blob_id(id)?;
            let sink = PgSink {
                db: self.db.clone(),
                id: id.to_owned(),
                upload: crate::service::new_id("upload-"),
                buf: Vec::new(),
                parts: 0,
                bytes: 0,
                done: false,
            };
            Ok(BlobWriter::new(Box::new(sink), limit))
        }
        .boxed()
    }

    fn read<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<u8>, BlobError>> {
        async move {
            check_blob_id(id)?;
            // One statement, one snapshot: never parts of two uploads.
            let rows = self
                .db
                .query(
                    "SELECT b.parts, p.data FROM nfai_blobs b \
                     LEFT JOIN nfai_blob_parts p ON p.upload = b.upload \
                     WHERE b.id = $1 ORDER BY p.seq",
                    &[(&id, Type::TEXT)],
                )
                .await
                .map_err(db_error)?;
            let first = rows
                .first()
                .ok_or_else(|| BlobError::Missing(id.to_owned()))?;
            let parts: i32 = column(first, "parts")?;
            let mut bytes = Vec::new();
            let mut found = 0;
            for row in &rows {
                if let Some(data) = column::<Option<&[u8]>>(row, "data")? {
                    bytes.extend_from_slice(data);
                    found += 1;
                }
            }
            if found != parts {
                return Err(BlobError::Io(format!(
                    "the bytes of {id} are incomplete: {found} of {parts} parts"
                )));
            }
            Ok(bytes)
        }
        .boxed()
    }

    fn stream<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<BlobStream, BlobError>> {
        async move {
            let (upload, parts) = self.head(id).await?;
            let db = self.db.clone();
            let id = id.to_owned();
            let pieces = futures::stream::unfold(0, move |seq| {
                let (db, id, upload) = (db.clone(), id.clone(), upload.clone());
                async move {
                    if seq >= parts {
                        return None;
                    }
                    match part(&db, &id, &upload, seq).await {
                        Ok(data) => Some((Ok(data), seq + 1)),
                        Err(e) => Some((Err(e), parts)),
                    }
                }
            });
            Ok(pieces.boxed())
        }
        .boxed()
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        async move {
            check_blob_id(id)?;
            self.db
                .query(
                    "WITH b AS (DELETE FROM nfai_blobs WHERE id = $1 RETURNING upload) \
                     DELETE FROM nfai_blob_parts WHERE upload IN (SELECT upload FROM b)",
                    &[(&id, Type::TEXT)],
                )
                .await
                .map_err(db_error)
                .map(|_| ())
        }
        .boxed()
    }
}

/// An upload in progress: parts written as they fill.
struct PgSink {
    db: PgHandle,
    id: String,
    upload: String,
    buf: Vec<u8>,
    parts: i32,
    bytes: i64,
    /// Committed, or nothing to clean up.
    done: bool,
}

impl PgSink {
    async fn write_part(&mut self, data: Vec<u8>) -> Result<(), BlobError> {
        self.db
            .query(
                "INSERT INTO nfai_blob_parts (upload, seq, data) VALUES ($1, $2, $3)",
                &[
                    (&self.upload, Type::TEXT),
                    (&self.parts, Type::INT4),
                    (&data, Type::BYTEA),
                ],
            )
            .await
            .map_err(db_error)?;
        self.parts += 1;
        Ok(())
    }
}

impl BlobSink for PgSink {
    fn append<'a>(&'a mut self, bytes: &'a [u8]) -> BoxFuture<'a, Result<(), BlobError>> {
        async move {
            self.buf.extend_from_slice(bytes);
            self.bytes = self.bytes.saturating_add(bytes.len() as i64);
            while self.buf.len() >= PART_BYTES {
                let rest = self.buf.split_off(PART_BYTES);
                let full = std::mem::replace(&mut self.buf, rest);
                self.write_part(full).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<(), BlobError>> {
        async move {
            if !self.buf.is_empty() {
                let last = std::mem::take(&mut self.buf);
                self.write_part(last).await?;
            }
            self.db
                .query(
                    "WITH prev AS (SELECT upload FROM nfai_blobs WHERE id = $1), \
                          put AS (INSERT INTO nfai_blobs (id, upload, bytes, parts) \
                                  VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE \
                                  SET upload = EXCLUDED.upload, bytes = EXCLUDED.bytes, \
                                      parts = EXCLUDED.parts) \
                     DELETE FROM nfai_blob_parts \
                     WHERE upload IN (SELECT upload FROM prev) AND upload <> $2",
                    &[
                        (&self.id, Type::TEXT),
                        (&self.upload, Type::TEXT),
                        (&self.bytes, Type::INT8),
                        (&self.parts, Type::INT4),
                    ],
                )
                .await
                .map_err(db_error)?;
            self.done = true;
            Ok(())
        }
        .boxed()
    }
}

impl Drop for PgSink {
    fn drop(&mut self) {
        if self.done || self.parts == 0 {
            return;
        }
        // Aborted after some parts were written: remove them in the background (the start-up
        // sweep catches any this misses).
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (db, upload) = (self.db.clone(), std::mem::take(&mut self.upload));
            handle.spawn(async move {
                let _ = db
                    .query(
                        "DELETE FROM nfai_blob_parts WHERE upload = $1",
                        &[(&upload, Type::TEXT)],
                    )
                    .await;
            });
        }
    }
}
