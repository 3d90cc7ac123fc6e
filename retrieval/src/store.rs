//! The [`VectorStore`] trait: the one interface the router holds (`Arc<dyn VectorStore>`),
//! implemented by the embedded [`EdgeStore`](crate::EdgeStore) and by
//! [`QdrantServerStore`](crate::QdrantServerStore).
//!
//! The trait is async and object-safe (methods return boxed futures). The embedded store's
//! engine is synchronous: its implementation runs every call on tokio's blocking pool, so an
//! async caller never blocks a runtime worker. The server store awaits gRPC calls.
//!
//! Each collection is pinned to the embedding model and dimension it was created with; a
//! search whose query was embedded by another model fails with
//! [`RetrievalError::ModelMismatch`](crate::RetrievalError::ModelMismatch).

use futures::future::BoxFuture;

use crate::error::Result;
use crate::types::{Chunk, CollectionInfo, CollectionSpec, SampledChunk, SearchHit, SearchQuery};

/// A set of named collections of embedded chunks.
pub trait VectorStore: Send + Sync + 'static {
    /// Creates an empty collection pinned to `spec`.
    fn create_collection<'a>(
        &'a self,
        name: &'a str,
        spec: CollectionSpec,
    ) -> BoxFuture<'a, Result<()>>;

    /// Opens a collection (loading it from disk after a restart) and describes it.
    fn open_collection<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<CollectionInfo>>;

    /// Deletes a collection and all its chunks.
    fn drop_collection<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Stores chunks, replacing any with the same point ids.
    fn upsert<'a>(&'a self, name: &'a str, chunks: Vec<Chunk>) -> BoxFuture<'a, Result<()>>;

    /// Deletes every chunk of a file; returns how many were deleted.
    fn delete_file<'a>(&'a self, name: &'a str, file_id: &'a str) -> BoxFuture<'a, Result<usize>>;

    /// Nearest chunks to the query among those its filter admits, best first.
    fn search<'a>(
        &'a self,
        name: &'a str,
        query: SearchQuery,
    ) -> BoxFuture<'a, Result<Vec<SearchHit>>>;

    /// Number of chunks in the collection.
    fn count<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<usize>>;

    /// Up to `limit` stored chunks' vectors and languages: the first by point id, which are
    /// hashes, so an even sample (all of them in a smaller collection).
    fn sample<'a>(
        &'a self,
        name: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<SampledChunk>>>;

    /// Builds the collection's indexes after ingestion; `true` if any work was done.
    fn optimize<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool>>;

    /// Makes every acknowledged write durable.
    fn flush<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;
}
