//! Retrieval in the router: builds the [`RetrievalService`] from the configuration, with
//! [`embed::NativeEmbed`] as its embedder.
//!
//! Data lives under `[data] dir`: `records/` (JSON records of files, stores, store files and
//! batches), `files/` (uploaded bytes) and `vector_stores/` (the embedded qdrant-edge
//! collections). With `[retrieval] qdrant_url` the collections live in that Qdrant server
//! instead; records and bytes stay in the data directory.

pub mod embed;
pub mod fresh;
pub mod metrics;
pub mod pool_metrics;
pub mod sources;

use std::sync::Arc;

use anyhow::Context;
use nfai_retrieval::records::{BlobDir, DirRecords};
use nfai_retrieval::service::{RetrievalService, ServiceOptions};
use nfai_retrieval::{
    EdgeStore, EdgeStoreOptions, QdrantServerConfig, QdrantServerStore, VectorStore,
};

use crate::backend::native::NativeBackend;
use crate::config::reserved::ReservedConfig;

/// Opens the data directory and the vector store and starts the service (needs a runtime).
pub fn start(
    config: &ReservedConfig,
    native: Arc<NativeBackend>,
) -> anyhow::Result<RetrievalService> {
    let dir = &config.data_dir;
    let records = DirRecords::open(dir.join("records"))
        .with_context(|| format!("opening the records in {}", dir.display()))?;
    let blobs = BlobDir::open(dir.join("files"))
        .with_context(|| format!("opening the uploaded files in {}", dir.display()))?;
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
        ..ServiceOptions::default()
    };
    Ok(RetrievalService::start(
        Arc::new(records),
        blobs,
        store,
        Arc::new(embed::NativeEmbed::new(native)),
        options,
    ))
}
