//! [`RetrievalService`]: OpenAI's Files and Vector Stores over the [`Records`], the blob
//! directory, a [`VectorStore`] and an [`Embed`] provider. HTTP handlers stay thin: they parse
//! the wire request and call one method here.
//!
//! - `files`: uploaded files (bytes stream to disk, limited by `max_file_bytes`);
//! - `stores`: stores pinned to an embedding model (default multilingual-e5-small), with
//!   `file_counts`, `usage_bytes` and status derived from their files;
//! - `store_files`: attaching files (with attributes and a chunking strategy), batches;
//! - `ingest`: background ingestion, bounded in queue and concurrency, resumed after a restart;
//! - `search`: query embedding and search, both cached (`cache`), ranking a multilingual
//!   store's languages evenly (`languages`);
//! - `check`: validation of metadata, attributes and chunking strategies, naming the field.

mod access;
mod cache;
mod check;
mod embed;
mod files;
mod flush;
mod ids;
mod ingest;
mod languages;
mod page;
mod search;
mod store_files;
mod stores;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use access::Access;
pub use cache::CacheStats;
pub use embed::{Embed, EmbedderInfo, TextKind};
pub use ids::{new_id, now};
pub use page::{DEFAULT_LIMIT, ListQuery, MAX_LIMIT, Order, Page, paginate};
pub use search::{MAX_NUM_RESULTS, SearchRequest};
pub use store_files::{AddFile, BatchView};
pub use stores::{CreateStore, FileCounts, ModifyStore, StoreView};

use crate::optimize::OptimizeScheduler;
use crate::records::{Blobs, Records};
use crate::store::VectorStore;

/// The default embedding model of a new store.
pub const DEFAULT_MODEL: &str = "multilingual-e5-small";

/// Limits and sizes of the service.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Model of stores created without `embedding_model`.
    pub default_model: String,
    /// Largest upload, in bytes (`[files] max_bytes`).
    pub max_file_bytes: u64,
    /// Files ingested at once.
    pub ingest_concurrency: usize,
    /// File bytes ingested at once (a larger file is ingested alone).
    pub ingest_max_bytes: u64,
    /// Files waiting for ingestion in memory; the rest wait in the records.
    pub ingest_queue: usize,
    /// Chunks per embedding call.
    pub embed_batch: usize,
    /// Byte budgets of the query-embedding and search-result caches.
    pub query_cache_bytes: u64,
    pub result_cache_bytes: u64,
    /// Seconds between sweeps for pending files that did not fit the queue.
    pub sweep_secs: u64,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            default_model: DEFAULT_MODEL.into(),
            max_file_bytes: 512 * 1024 * 1024,
            ingest_concurrency: 2,
            ingest_max_bytes: 256 * 1024 * 1024,
            ingest_queue: 64,
            embed_batch: 16,
            query_cache_bytes: 16 * 1024 * 1024,
            result_cache_bytes: 32 * 1024 * 1024,
            sweep_secs: 2,
        }
    }
}

/// How long a search result stays cached when the records are shared with other replicas
/// (whose writes do not bump this process's store versions).
const SHARED_RESULT_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// The retrieval service; cheap to clone.
#[derive(Clone)]
pub struct RetrievalService(Arc<Inner>);

impl std::fmt::Debug for RetrievalService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetrievalService")
            .field("options", &self.0.options)
            .finish_non_exhaustive()
    }
}

struct Inner {
    records: Arc<dyn Records>,
    blobs: Arc<dyn Blobs>,
    store: Arc<dyn VectorStore>,
    embed: Arc<dyn Embed>,
    optimizer: OptimizeScheduler,
    options: ServiceOptions,
    caches: cache::Caches,
    /// Each store's language balance.
    balances: languages::Balances,
    /// Serialises read-modify-write of store file and batch records.
    edit: tokio::sync::Mutex<()>,
    jobs: tokio::sync::mpsc::Sender<ingest::JobKey>,
    /// Jobs queued or running.
    active: Mutex<HashSet<ingest::JobKey>>,
    /// Ingestion runs started since the service started.
    runs: AtomicU64,
    /// Flushes shared by the ingestions that finish together.
    flushes: flush::FlushGroup,
    /// Held while a source's store is found or made.
    shared_stores: tokio::sync::Mutex<()>,
    /// This process's name in ingestion claims (shared records).
    holder: String,
}

impl RetrievalService {
    /// Starts the service on the current tokio runtime: the ingestion workers, the sweeper
    /// that resumes pending files (at once, then every `sweep_secs`), and the optimizer.
    pub fn start(
        records: Arc<dyn Records>,
        blobs: Arc<dyn Blobs>,
        store: Arc<dyn VectorStore>,
        embed: Arc<dyn Embed>,
        options: ServiceOptions,
    ) -> Self {
        let optimizer = OptimizeScheduler::start(Arc::clone(&store), 64, 1);
        let (jobs, rx) = tokio::sync::mpsc::channel(options.ingest_queue.max(1));
        // Another replica may write a shared store: its cached results live only briefly.
        let result_ttl = records.shared().then_some(SHARED_RESULT_TTL);
        let caches = cache::Caches::new(
            options.query_cache_bytes,
            options.result_cache_bytes,
            result_ttl,
        );
        let service = Self(Arc::new(Inner {
            records,
            blobs,
            store,
            embed,
            optimizer,
            options,
            caches,
            balances: languages::Balances::default(),
            edit: tokio::sync::Mutex::new(()),
            jobs,
            active: Mutex::new(HashSet::new()),
            runs: AtomicU64::new(0),
            flushes: flush::FlushGroup::default(),
            shared_stores: tokio::sync::Mutex::new(()),
            holder: ids::new_id("node-"),
        }));
        ingest::spawn_workers(&service, rx);
        service
    }

    pub fn options(&self) -> &ServiceOptions {
        &self.0.options
    }

    pub fn blobs(&self) -> &Arc<dyn Blobs> {
        &self.0.blobs
    }

    pub fn records(&self) -> &Arc<dyn Records> {
        &self.0.records
    }

    pub fn vector_store(&self) -> &Arc<dyn VectorStore> {
        &self.0.store
    }

    pub fn optimizer(&self) -> &OptimizeScheduler {
        &self.0.optimizer
    }

    /// Ingestion runs started since the service started (files embedded, or re-embedded).
    pub fn ingest_runs(&self) -> u64 {
        self.0.runs.load(Ordering::Relaxed)
    }

    /// Hit and miss counters of the query-embedding and search-result caches.
    pub fn cache_stats(&self) -> [CacheStats; 2] {
        self.0.caches.stats()
    }
}
