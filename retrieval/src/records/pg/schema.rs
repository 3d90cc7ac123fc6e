//! The tables nfai keeps in PostgreSQL (the retrieval records, file bytes and the API keys),
//! and [`PgHandle`]: the pool plus a one-time, lazily run schema setup shared by
//! [`super::PgRecords`], [`super::PgBlobs`] and the router's key store.
//!
//! Records are kept as their JSON (`doc`) beside the columns that are looked up; bytes as
//! numbered parts. The setup runs inside a transaction holding an advisory lock, so replicas
//! starting together do not race on `CREATE TABLE`, and it works through PgBouncer in
//! transaction mode (simple protocol, transaction-scoped lock).

use tokio::sync::OnceCell;

use crate::error::RetrievalError;
use crate::pg::{Param, PgError, PgPool, Row};

/// Every table nfai keeps; `IF NOT EXISTS`, so setup is idempotent.
const SCHEMA: &str = "
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT pg_advisory_xact_lock(7353914061);
CREATE TABLE IF NOT EXISTS nfai_files (
    id text PRIMARY KEY,
    doc text NOT NULL
);
CREATE TABLE IF NOT EXISTS nfai_stores (
    id text PRIMARY KEY,
    doc text NOT NULL
);
CREATE TABLE IF NOT EXISTS nfai_store_files (
    store_id text NOT NULL,
    file_id text NOT NULL,
    status text NOT NULL,
    doc text NOT NULL,
    PRIMARY KEY (store_id, file_id)
);
CREATE INDEX IF NOT EXISTS nfai_store_files_pending
    ON nfai_store_files (store_id, file_id) WHERE status = 'in_progress';
CREATE TABLE IF NOT EXISTS nfai_batches (
    store_id text NOT NULL,
    batch_id text NOT NULL,
    doc text NOT NULL,
    PRIMARY KEY (store_id, batch_id)
);
CREATE TABLE IF NOT EXISTS nfai_ingest_claims (
    store_id text NOT NULL,
    file_id text NOT NULL,
    revision bigint NOT NULL,
    holder text NOT NULL,
    until timestamptz NOT NULL,
    PRIMARY KEY (store_id, file_id)
);
CREATE TABLE IF NOT EXISTS nfai_blobs (
    id text PRIMARY KEY,
    upload text NOT NULL,
    bytes bigint NOT NULL,
    parts integer NOT NULL
);
CREATE TABLE IF NOT EXISTS nfai_blob_parts (
    upload text NOT NULL,
    seq integer NOT NULL,
    data bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (upload, seq)
);
CREATE INDEX IF NOT EXISTS nfai_blobs_upload ON nfai_blobs (upload);
CREATE TABLE IF NOT EXISTS nfai_api_keys (
    id text PRIMARY KEY,
    doc text NOT NULL
);
COMMIT;
";

/// Parts of uploads that never committed, left by a crash a day or more ago (an upload still
/// running on another replica is younger).
const SWEEP: &str = "DELETE FROM nfai_blob_parts p WHERE p.created_at < now() - interval '1 day' \
                     AND NOT EXISTS (SELECT 1 FROM nfai_blobs b WHERE b.upload = p.upload)";

/// The pool the records live in, with the schema made ready once before first use.
#[derive(Debug, Clone)]
pub struct PgHandle {
    pool: PgPool,
    ready: std::sync::Arc<OnceCell<()>>,
}

impl PgHandle {
    /// Wraps `pool`; no connection is opened until the first call, so a database that is down
    /// at start fails calls (503) instead of the start.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            ready: std::sync::Arc::new(OnceCell::new()),
        }
    }

    /// The pool (for its metrics).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Makes the tables exist; runs once per process, and again after a failure.
    pub async fn ready(&self) -> Result<(), PgError> {
        self.ready
            .get_or_try_init(|| async {
                let mut conn = self.pool.get().await?;
                let done = conn.batch_execute(SCHEMA).await;
                if done.is_err() {
                    // It may have stopped inside the transaction.
                    conn.discard();
                    return done;
                }
                conn.query(SWEEP, &[]).await.map(|_| ())
            })
            .await
            .map(|_| ())
    }

    /// Runs one statement after the schema is ready.
    pub async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, PgError> {
        self.ready().await?;
        self.pool.query(sql, params).await
    }
}

/// A database failure as the service reports it: the pool or server gone is unavailability
/// (503 with the cause); anything else is a storage error.
pub(crate) fn records_error(e: PgError) -> RetrievalError {
    if e.is_retryable() {
        RetrievalError::Unavailable(format!("records database: {e}"))
    } else {
        RetrievalError::Storage(format!("records database: {e}"))
    }
}
