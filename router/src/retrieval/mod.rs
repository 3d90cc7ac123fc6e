//! Retrieval in the router: builds the [`RetrievalService`] from the configuration, with
//! [`embed::NativeEmbed`] as its embedder.
//!
//! Data lives under `[data] dir`: `records/` (JSON records of files, stores, store files and
//! batches), `files/` (uploaded bytes) and `vector_stores/` (the embedded qdrant-edge
//! collections). With `[database] url` the records and bytes live in that PostgreSQL database
//! instead, and with `[retrieval] qdrant_url` the collections in that Qdrant server: with both,
//! replicas share everything and any of them answers for any file.

pub mod embed;
pub mod fresh;
pub mod metrics;
pub mod pool_metrics;
pub mod sources;

use std::sync::Arc;

use anyhow::Context;
use nfai_retrieval::pg::PgPool;
use nfai_retrieval::records::{BlobDir, Blobs, DirRecords, PgBlobs, PgHandle, PgRecords, Records};
use nfai_retrieval::service::{RetrievalService, ServiceOptions};
use nfai_retrieval::{
    EdgeStore, EdgeStoreOptions, QdrantServerConfig, QdrantServerStore, VectorStore,
};

use crate::backend::native::NativeBackend;
use crate::config::reserved::ReservedConfig;

/// The pool of nfai's own tables in `[database]` (`NFAI_DATABASE_URL`), if one is set: the
/// retrieval records and the API keys. Sources read through pools of their own. No connection
/// opens until first use.
pub fn database_pool(config: &ReservedConfig) -> anyhow::Result<Option<PgPool>> {
    let Some(url) = &config.database_url else {
        return Ok(None);
    };
    let pg = config
        .database_pool
        .pg_config(url.expose(), config.database_max_connections);
    Ok(Some(PgPool::connect(pg).context("the database pool")?))
}

/// Opens the records (in `database`, else the data directory) and the vector store and starts
/// the service (needs a runtime).
pub fn start(
    config: &ReservedConfig,
    native: Arc<NativeBackend>,
    database: Option<&PgPool>,
) -> anyhow::Result<RetrievalService> {
    let dir = &config.data_dir;
    let (records, blobs): (Arc<dyn Records>, Arc<dyn Blobs>) = match database {
        Some(pool) => {
            let db = PgHandle::new(pool.clone());
            (
                Arc::new(PgRecords::new(db.clone())),
                Arc::new(PgBlobs::new(db)),
            )
        }
        None => (
            Arc::new(
                DirRecords::open(dir.join("records"))
                    .with_context(|| format!("opening the records in {}", dir.display()))?,
            ),
            Arc::new(
                BlobDir::open(dir.join("files"))
                    .with_context(|| format!("opening the uploaded files in {}", dir.display()))?,
            ),
        ),
    };
    if database.is_some() && config.qdrant_url.is_none() {
        tracing::info!(
            "records and files are in the database, vector stores in {}: replicas sharing the \
             database need a Qdrant server (NFAI_QDRANT_URL) to search each other's stores",
            dir.join("vector_stores").display()
        );
    }
    let store: Arc<dyn VectorStore> = match &config.qdrant_url {
        Some(url) => {
            let mut qdrant = QdrantServerConfig::new(url.clone());
            qdrant.api_key = config
                .qdrant_api_key
                .as_ref()
                .map(|k| k.expose().to_owned());
            Arc::new(QdrantServerStore::new(&qdrant).context("connecting to Qdrant")?)
        }
        None => Arc::new(
            EdgeStore::new(dir.join("vector_stores"), EdgeStoreOptions::default())
                .with_context(|| format!("opening the vector stores in {}", dir.display()))?,
        ),
    };
    let options = ServiceOptions {
        max_file_bytes: config.files_max_bytes,
        ingest_concurrency: config.ingest_concurrency,
        ingest_max_bytes: config.ingest_max_bytes,
        ..ServiceOptions::default()
    };
    Ok(RetrievalService::start(
        records,
        blobs,
        store,
        Arc::new(embed::NativeEmbed::new(native)),
        options,
    ))
}
