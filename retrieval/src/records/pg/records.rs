//! [`PgRecords`]: the retrieval records in PostgreSQL, so that every replica sharing the
//! database sees the same files, stores, store files, batches and ingestion jobs.
//!
//! Each `put_*` is one upsert and each delete one statement (a store's delete takes its store
//! files, batches and job claims in the same statement), so a crash never leaves half a
//! record. Ingestion jobs are claimed with a lease ([`Records::claim_job`]): one replica runs a
//! job while its lease lasts, and a replica that dies mid-run leaves it to the others when the
//! lease ends.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::schema::{PgHandle, records_error};
use crate::error::{Result, RetrievalError};
use crate::pg::{Row, Type};
use crate::records::{BatchRecord, FileRecord, Records, StoreFileRecord, StoreRecord, check_id};

/// The records in a PostgreSQL database; cheap to clone.
#[derive(Debug, Clone)]
pub struct PgRecords {
    db: PgHandle,
}

fn encode<T: Serialize>(record: &T) -> Result<String> {
    serde_json::to_string(record)
        .map_err(|e| RetrievalError::Storage(format!("cannot encode a record: {e}")))
}

fn decode<T: DeserializeOwned>(row: &Row) -> Result<T> {
    let doc: &str = row
        .try_get("doc")
        .map_err(|e| RetrievalError::Storage(format!("records database: {e}")))?;
    serde_json::from_str(doc)
        .map_err(|e| RetrievalError::Storage(format!("a stored record is not valid: {e}")))
}

fn decode_all<T: DeserializeOwned>(rows: &[Row]) -> Result<Vec<T>> {
    rows.iter().map(decode).collect()
}

impl PgRecords {
    /// The records in `db`'s database (tables made on first use).
    pub fn new(db: PgHandle) -> Self {
        Self { db }
    }

    async fn rows(&self, sql: &str, params: &[crate::pg::Param<'_>]) -> Result<Vec<Row>> {
        self.db.query(sql, params).await.map_err(records_error)
    }

    async fn one<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[crate::pg::Param<'_>],
    ) -> Result<Option<T>> {
        self.rows(sql, params)
            .await?
            .first()
            .map(decode)
            .transpose()
    }
}

/// A table of records keyed by one `id` (files, stores).
#[derive(Clone, Copy)]
struct ById {
    upsert: &'static str,
    get: &'static str,
}

const FILES: ById = ById {
    upsert: "INSERT INTO nfai_files (id, doc) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc",
    get: "SELECT doc FROM nfai_files WHERE id = $1",
};

const STORES: ById = ById {
    upsert: "INSERT INTO nfai_stores (id, doc) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc",
    get: "SELECT doc FROM nfai_stores WHERE id = $1",
};

impl PgRecords {
    async fn put_by_id<T: Serialize + Sync>(
        &self,
        table: ById,
        id: &str,
        record: &T,
    ) -> Result<()> {
        check_id(id)?;
        let doc = encode(record)?;
        self.rows(table.upsert, &[(&id, Type::TEXT), (&doc, Type::TEXT)])
            .await
            .map(|_| ())
    }

    async fn get_by_id<T: DeserializeOwned>(&self, table: ById, id: &str) -> Result<Option<T>> {
        self.one(table.get, &[(&id, Type::TEXT)]).await
    }
}

impl Records for PgRecords {
    fn put_file(&self, file: FileRecord) -> BoxFuture<'_, Result<()>> {
        async move { self.put_by_id(FILES, &file.id, &file).await }.boxed()
    }

    fn get_file<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<FileRecord>>> {
        async move { self.get_by_id(FILES, id).await }.boxed()
    }

    fn list_files(&self) -> BoxFuture<'_, Result<Vec<FileRecord>>> {
        async move { decode_all(&self.rows("SELECT doc FROM nfai_files", &[]).await?) }.boxed()
    }

    fn delete_file<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        async move {
            let rows = self
                .rows(
                    "DELETE FROM nfai_files WHERE id = $1 RETURNING id",
                    &[(&id, Type::TEXT)],
                )
                .await?;
            Ok(!rows.is_empty())
        }
        .boxed()
    }

    fn put_store(&self, store: StoreRecord) -> BoxFuture<'_, Result<()>> {
        async move { self.put_by_id(STORES, &store.id, &store).await }.boxed()
    }

    fn get_store<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<StoreRecord>>> {
        async move { self.get_by_id(STORES, id).await }.boxed()
    }

    fn list_stores(&self) -> BoxFuture<'_, Result<Vec<StoreRecord>>> {
        async move { decode_all(&self.rows("SELECT doc FROM nfai_stores", &[]).await?) }.boxed()
    }

    fn delete_store<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        async move {
            let rows = self
                .rows(
                    "WITH f AS (DELETE FROM nfai_store_files WHERE store_id = $1), \
                          b AS (DELETE FROM nfai_batches WHERE store_id = $1), \
                          c AS (DELETE FROM nfai_ingest_claims WHERE store_id = $1) \
                     DELETE FROM nfai_stores WHERE id = $1 RETURNING id",
                    &[(&id, Type::TEXT)],
                )
                .await?;
            Ok(!rows.is_empty())
        }
        .boxed()
    }

    fn put_store_file(&self, file: StoreFileRecord) -> BoxFuture<'_, Result<()>> {
        async move {
            check_id(&file.store_id)?;
            check_id(&file.file_id)?;
            let doc = encode(&file)?;
            let status = file.status.as_str();
            self.rows(
                "INSERT INTO nfai_store_files (store_id, file_id, status, doc) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (store_id, file_id) \
                 DO UPDATE SET status = EXCLUDED.status, doc = EXCLUDED.doc",
                &[
                    (&file.store_id, Type::TEXT),
                    (&file.file_id, Type::TEXT),
                    (&status, Type::TEXT),
                    (&doc, Type::TEXT),
                ],
            )
            .await
            .map(|_| ())
        }
        .boxed()
    }

    fn get_store_file<'a>(
        &'a self,
        store_id: &'a str,
        file_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoreFileRecord>>> {
        async move {
            self.one(
                "SELECT doc FROM nfai_store_files WHERE store_id = $1 AND file_id = $2",
                &[(&store_id, Type::TEXT), (&file_id, Type::TEXT)],
            )
            .await
        }
        .boxed()
    }

    fn list_store_files<'a>(
        &'a self,
        store_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoreFileRecord>>> {
        async move {
            let rows = self
                .rows(
                    "SELECT doc FROM nfai_store_files WHERE store_id = $1",
                    &[(&store_id, Type::TEXT)],
                )
                .await?;
            decode_all(&rows)
        }
        .boxed()
    }

    fn delete_store_file<'a>(
        &'a self,
        store_id: &'a str,
        file_id: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        async move {
            let rows = self
                .rows(
                    "WITH c AS (DELETE FROM nfai_ingest_claims \
                                WHERE store_id = $1 AND file_id = $2) \
                     DELETE FROM nfai_store_files WHERE store_id = $1 AND file_id = $2 \
                     RETURNING file_id",
                    &[(&store_id, Type::TEXT), (&file_id, Type::TEXT)],
                )
                .await?;
            Ok(!rows.is_empty())
        }
        .boxed()
    }

    fn pending_store_files(&self) -> BoxFuture<'_, Result<Vec<StoreFileRecord>>> {
        async move {
            let rows = self
                .rows(
                    "SELECT doc FROM nfai_store_files WHERE status = 'in_progress'",
                    &[],
                )
                .await?;
            decode_all(&rows)
        }
        .boxed()
    }

    fn put_batch(&self, batch: BatchRecord) -> BoxFuture<'_, Result<()>> {
        async move {
            check_id(&batch.store_id)?;
            check_id(&batch.id)?;
            let doc = encode(&batch)?;
            self.rows(
                "INSERT INTO nfai_batches (store_id, batch_id, doc) VALUES ($1, $2, $3) \
                 ON CONFLICT (store_id, batch_id) DO UPDATE SET doc = EXCLUDED.doc",
                &[
                    (&batch.store_id, Type::TEXT),
                    (&batch.id, Type::TEXT),
                    (&doc, Type::TEXT),
                ],
            )
            .await
            .map(|_| ())
        }
        .boxed()
    }

    fn get_batch<'a>(
        &'a self,
        store_id: &'a str,
        batch_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<BatchRecord>>> {
        async move {
            self.one(
                "SELECT doc FROM nfai_batches WHERE store_id = $1 AND batch_id = $2",
                &[(&store_id, Type::TEXT), (&batch_id, Type::TEXT)],
            )
            .await
        }
        .boxed()
    }

    fn shared(&self) -> bool {
        true
    }

    fn claim_job<'a>(
        &'a self,
        file: &'a StoreFileRecord,
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool>> {
        async move {
            let revision = i64::try_from(file.revision).unwrap_or(i64::MAX);
            let lease_secs = lease.as_secs_f64();
            // Taken when free, when this holder has it, when its lease ran out, or when it was
            // taken for an older revision (that run will find itself superseded).
            let rows = self
                .rows(
                    "INSERT INTO nfai_ingest_claims AS c (store_id, file_id, revision, holder, until) \
                     VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) \
                     ON CONFLICT (store_id, file_id) DO UPDATE \
                     SET revision = EXCLUDED.revision, holder = EXCLUDED.holder, \
                         until = EXCLUDED.until \
                     WHERE c.holder = EXCLUDED.holder OR c.until < now() \
                        OR c.revision < EXCLUDED.revision \
                     RETURNING holder",
                    &[
                        (&file.store_id, Type::TEXT),
                        (&file.file_id, Type::TEXT),
                        (&revision, Type::INT8),
                        (&holder, Type::TEXT),
                        (&lease_secs, Type::FLOAT8),
                    ],
                )
                .await?;
            Ok(!rows.is_empty())
        }
        .boxed()
    }

    fn release_job<'a>(
        &'a self,
        store_id: &'a str,
        file_id: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            self.rows(
                "DELETE FROM nfai_ingest_claims \
                 WHERE store_id = $1 AND file_id = $2 AND holder = $3",
                &[
                    (&store_id, Type::TEXT),
                    (&file_id, Type::TEXT),
                    (&holder, Type::TEXT),
                ],
            )
            .await
            .map(|_| ())
        }
        .boxed()
    }
}
