//! [`EdgeStore`]: the embedded vector store, qdrant-edge running inside the process.
//!
//! Layout: one directory per collection under the store's root (the router passes
//! `<data_dir>/vector_stores`, so a store's data lives in `<data_dir>/vector_stores/<store id>`).
//! Collections are opened lazily from disk on first use, so a restart reopens them without
//! re-embedding anything. Every call runs on tokio's blocking pool.

mod collection;
mod config;
mod meta;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;

pub use collection::{EdgeCollection, RawHit, RawPoint, qdrant_filter};
pub use config::EdgeStoreOptions;
pub use meta::META_FILE;

use crate::error::{Result, RetrievalError};
use crate::store::VectorStore;
use crate::types::{Chunk, CollectionInfo, CollectionSpec, SampledChunk, SearchHit, SearchQuery};

/// Longest a dropped collection waits for its in-flight calls to finish.
const DROP_WAIT: Duration = Duration::from_secs(10);
/// Longest accepted collection name.
pub const MAX_COLLECTION_NAME: usize = 128;

/// The embedded store; cheap to clone.
#[derive(Clone, Debug)]
pub struct EdgeStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    options: EdgeStoreOptions,
    open: RwLock<HashMap<String, Arc<EdgeCollection>>>,
}

impl EdgeStore {
    /// A store whose collections live under `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>, options: EdgeStoreOptions) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| meta::io_error(&root, &e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                options,
                open: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// The directory holding the collections.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The open collection `name`, loading it from disk if needed (blocking).
    pub fn collection_blocking(&self, name: &str) -> Result<Arc<EdgeCollection>> {
        self.inner.get(name)
    }

    /// Runs `call` on the blocking pool with the store.
    fn blocking<'a, T: Send + 'static>(
        &'a self,
        call: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> BoxFuture<'a, Result<T>> {
        let inner = Arc::clone(&self.inner);
        async move {
            tokio::task::spawn_blocking(move || call(&inner))
                .await
                .map_err(|e| {
                    RetrievalError::Unavailable(format!("embedded store task failed: {e}"))
                })?
        }
        .boxed()
    }

    /// Runs `call` on the blocking pool with the open collection `name`.
    fn with_collection<'a, T: Send + 'static>(
        &'a self,
        name: &str,
        call: impl FnOnce(&EdgeCollection) -> Result<T> + Send + 'static,
    ) -> BoxFuture<'a, Result<T>> {
        let name = name.to_owned();
        self.blocking(move |inner| call(inner.get(&name)?.as_ref()))
    }
}

impl Inner {
    fn dir(&self, name: &str) -> Result<PathBuf> {
        validate_name(name)?;
        Ok(self.root.join(name))
    }

    fn get(&self, name: &str) -> Result<Arc<EdgeCollection>> {
        let dir = self.dir(name)?;
        if let Some(found) = self.read_open().get(name) {
            return Ok(Arc::clone(found));
        }
        let mut open = self.open.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = open.get(name) {
            return Ok(Arc::clone(found));
        }
        let collection = EdgeCollection::open(name, &dir, &self.options)?
            .ok_or_else(|| RetrievalError::NotFound(name.into()))?;
        let collection = Arc::new(collection);
        open.insert(name.into(), Arc::clone(&collection));
        Ok(collection)
    }

    fn create(&self, name: &str, spec: CollectionSpec) -> Result<()> {
        spec.validate()?;
        let dir = self.dir(name)?;
        let mut open = self.open.write().unwrap_or_else(PoisonError::into_inner);
        if open.contains_key(name) {
            return Err(RetrievalError::AlreadyExists(name.into()));
        }
        let collection = EdgeCollection::create(name, &dir, spec, &self.options)?;
        open.insert(name.into(), Arc::new(collection));
        Ok(())
    }

    fn drop_collection(&self, name: &str) -> Result<()> {
        let dir = self.dir(name)?;
        // Make sure it exists (and is open) so that a missing collection is a 404.
        self.get(name)?;
        let removed = self
            .open
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        if let Some(mut collection) = removed {
            // Wait for in-flight calls to let go, so the shard closes before its files go.
            let deadline = Instant::now() + DROP_WAIT;
            loop {
                match Arc::try_unwrap(collection) {
                    Ok(owned) => {
                        // Closing flushes; the files are removed next, so a failing flush
                        // loses nothing.
                        let _ =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(owned)));
                        break;
                    }
                    Err(shared) if Instant::now() < deadline => {
                        collection = shared;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(shared) => {
                        self.open
                            .write()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(name.into(), shared);
                        return Err(RetrievalError::Unavailable(format!(
                            "collection `{name}` is busy; try again"
                        )));
                    }
                }
            }
        }
        // Removing the metadata first makes a half-deleted directory read as absent.
        let meta = dir.join(META_FILE);
        std::fs::remove_file(&meta).map_err(|e| meta::io_error(&meta, &e))?;
        std::fs::remove_dir_all(&dir).map_err(|e| meta::io_error(&dir, &e))
    }

    fn read_open(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<EdgeCollection>>> {
        self.open.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Collection names become directory names: ASCII letters, digits, `_` and `-` only.
fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.len() > MAX_COLLECTION_NAME {
        "is longer than 128 characters"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        "may hold only ASCII letters, digits, `_` and `-`"
    } else {
        return Ok(());
    };
    Err(RetrievalError::InvalidName {
        name: name.into(),
        reason,
    })
}

impl VectorStore for EdgeStore {
    fn create_collection<'a>(
        &'a self,
        name: &'a str,
        spec: CollectionSpec,
    ) -> BoxFuture<'a, Result<()>> {
        let name = name.to_owned();
        self.blocking(move |inner| inner.create(&name, spec))
    }

    fn open_collection<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<CollectionInfo>> {
        self.with_collection(name, EdgeCollection::info)
    }

    fn drop_collection<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        let name = name.to_owned();
        self.blocking(move |inner| inner.drop_collection(&name))
    }

    fn upsert<'a>(&'a self, name: &'a str, chunks: Vec<Chunk>) -> BoxFuture<'a, Result<()>> {
        self.with_collection(name, move |c| c.upsert(chunks))
    }

    fn delete_file<'a>(&'a self, name: &'a str, file_id: &'a str) -> BoxFuture<'a, Result<usize>> {
        let file_id = file_id.to_owned();
        self.with_collection(name, move |c| c.delete_file(&file_id))
    }

    fn search<'a>(
        &'a self,
        name: &'a str,
        query: SearchQuery,
    ) -> BoxFuture<'a, Result<Vec<SearchHit>>> {
        self.with_collection(name, move |c| c.search(query))
    }

    fn count<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<usize>> {
        self.with_collection(name, EdgeCollection::count)
    }

    fn sample<'a>(
        &'a self,
        name: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<SampledChunk>>> {
        self.with_collection(name, move |c| c.sample(limit))
    }

    fn optimize<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool>> {
        self.with_collection(name, EdgeCollection::optimize)
    }

    fn flush<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.with_collection(name, EdgeCollection::flush)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_plain_directory_names_are_refused() {
        assert!(validate_name("vs_abc-123").is_ok());
        for bad in ["", "../x", "a/b", "a b", ".hidden", "ầ"] {
            assert!(
                matches!(validate_name(bad), Err(RetrievalError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert!(validate_name(&"a".repeat(MAX_COLLECTION_NAME + 1)).is_err());
    }
}
