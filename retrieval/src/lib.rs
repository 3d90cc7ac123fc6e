//! nfai's retrieval engine: vector stores of embedded chunks behind one trait.
//!
//! - [`VectorStore`] (`store`): create/open/drop collections pinned to an embedding model,
//!   upsert chunks, delete a file's chunks, search with an OpenAI filter, count, optimize,
//!   flush. The router holds an `Arc<dyn VectorStore>`.
//! - [`EdgeStore`] (`edge`): qdrant-edge inside the process, one directory per collection,
//!   HNSW with int8 scalar quantization and rescoring, payload indexes on attributes.
//! - [`QdrantServerStore`] (`server`): a Qdrant server over gRPC through qdrant-client.
//! - `filter`: OpenAI filters, each store's attribute registry, translation to Qdrant.
//! - [`OptimizeScheduler`] (`optimize`): background, bounded index builds after ingestion.
//! - `ingest`: text extraction by file type, NFC normalisation, token chunking.
//! - `pg`: pooled PostgreSQL (deadpool-postgres) with statement modes and metrics.
//! - `sources`: CRM rows from PostgreSQL queries synced into vector stores as files.
//! - `records`: durable records of files, stores, store files and batches ([`records::Records`],
//!   kept in the data directory by [`records::DirRecords`]); file bytes in [`records::BlobDir`].
//! - `service`: [`service::RetrievalService`], OpenAI's Files and Vector Stores over the records,
//!   a vector store and an [`service::Embed`] provider: background ingestion, cached search.
//! - [`LanguageBalance`] (`balance`): searches that rank a multilingual store's languages
//!   evenly.
//! - `types`: chunks, payloads, queries and hits; `error`: [`RetrievalError`].

mod balance;
mod edge;
mod error;
pub mod filter;
pub mod ingest;
mod optimize;
pub mod pg;
pub mod records;
mod server;
pub mod service;
pub mod sources;
mod store;
mod types;

pub use balance::{LanguageBalance, SAMPLE_CHUNKS};
pub use edge::{
    EdgeCollection, EdgeStore, EdgeStoreOptions, MAX_COLLECTION_NAME, META_FILE, RawHit, RawPoint,
    qdrant_filter,
};
pub use error::{AttributeKind, Result, RetrievalError};
pub use filter::{AttributeFilter, AttributeRegistry, ComparisonOp, CompoundOp, FilterValue};
pub use optimize::{OptimizeScheduler, OptimizeStats, Scheduled};
pub use server::{
    DIMENSION_METADATA_KEY, MODEL_METADATA_KEY, QdrantServerConfig, QdrantServerStore,
    payload_to_json, to_grpc_filter, to_json, to_qdrant_payload, to_qdrant_value,
};
pub use store::VectorStore;
pub use types::{
    ATTRIBUTES_KEY, AttributeValue, Chunk, ChunkPayload, CollectionInfo, CollectionSpec,
    FILE_ID_KEY, LANG_KEY, LanguageScope, MAX_SEARCH_LIMIT, SampledChunk, SearchHit, SearchQuery,
    chunk_point_id,
};
