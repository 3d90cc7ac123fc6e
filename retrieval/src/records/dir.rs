//! [`DirRecords`]: records as one JSON file each under `<data dir>/records/`, read into memory
//! at start and written through on every change.
//!
//! Layout: `files/<id>.json`, `stores/<id>.json`, `store_files/<store>/<file>.json`,
//! `batches/<store>/<batch>.json`. A write goes to a `.tmp` file that is fsynced, renamed over
//! the record and followed by an fsync of the directory, so a crash leaves either the old or
//! the new record, never half of one; leftover `.tmp` files are removed at start. Writes are
//! serialised (one at a time, off the async workers); reads come from memory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{BatchRecord, FileRecord, FileStatus, Records, StoreFileRecord, StoreRecord};
use super::{check_id, safe_id};
use crate::error::{Result, RetrievalError};

/// The data-directory records; cheap to clone.
#[derive(Debug, Clone)]
pub struct DirRecords {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    state: RwLock<State>,
    /// Held across a disk write and the matching memory update.
    write: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<String, FileRecord>,
    stores: HashMap<String, StoreRecord>,
    store_files: HashMap<String, BTreeMap<String, StoreFileRecord>>,
    batches: HashMap<String, BTreeMap<String, BatchRecord>>,
}

fn io(path: &Path, e: &std::io::Error) -> RetrievalError {
    RetrievalError::Storage(format!("{}: {e}", path.display()))
}

/// Writes `value` as JSON to `path` atomically and durably.
fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .ok_or_else(|| RetrievalError::Storage(format!("{} has no parent", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
    let bytes = serde_json::to_vec(value)
        .map_err(|e| RetrievalError::Storage(format!("cannot encode a record: {e}")))?;
    let tmp = path.with_extension("json.tmp");
    let write = |tmp: &Path| -> std::io::Result<()> {
        let mut f = std::fs::File::create(tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path, &e));
    }
    Ok(())
}

/// Removes a record file, then syncs its directory.
fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        // Nothing was removed (the directory itself may not exist yet): nothing to sync.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path, &e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dir, &e))?;
    }
    Ok(())
}

/// Reads every `*.json` record of a directory; removes `.tmp` leftovers.
fn read_dir<T: DeserializeOwned>(dir: &Path) -> Result<Vec<T>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir, &e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io(dir, &e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".tmp") {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if !name.ends_with(".json") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| io(&path, &e))?;
        match serde_json::from_slice(&bytes) {
            Ok(record) => out.push(record),
            Err(e) => {
                return Err(RetrievalError::Storage(format!(
                    "{} is not a valid record: {e}",
                    path.display()
                )));
            }
        }
    }
    Ok(out)
}

/// Sub-directories of a directory (one per store).
fn sub_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()).map_err(|e| io(dir, &e)))
            .filter(|p| p.as_ref().is_err() || p.as_ref().is_ok_and(|p| p.is_dir()))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(dir, &e)),
    }
}

impl DirRecords {
    /// Opens (creating if missing) the records under `root` and reads them all (blocking).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| io(&root, &e))?;
        let mut state = State::default();
        for f in read_dir::<FileRecord>(&root.join("files"))? {
            state.files.insert(f.id.clone(), f);
        }
        for s in read_dir::<StoreRecord>(&root.join("stores"))? {
            state.stores.insert(s.id.clone(), s);
        }
        for dir in sub_dirs(&root.join("store_files"))? {
            for f in read_dir::<StoreFileRecord>(&dir)? {
                state
                    .store_files
                    .entry(f.store_id.clone())
                    .or_default()
                    .insert(f.file_id.clone(), f);
            }
        }
        for dir in sub_dirs(&root.join("batches"))? {
            for b in read_dir::<BatchRecord>(&dir)? {
                state
                    .batches
                    .entry(b.store_id.clone())
                    .or_default()
                    .insert(b.id.clone(), b);
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                state: RwLock::new(state),
                write: tokio::sync::Mutex::new(()),
            }),
        })
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs `disk` on the blocking pool, then `memory` on the state, one write at a time.
    async fn write<T: Send + 'static>(
        &self,
        disk: impl FnOnce(&Path) -> Result<()> + Send + 'static,
        memory: impl FnOnce(&mut State) -> T,
    ) -> Result<T> {
        let _guard = self.inner.write.lock().await;
        let root = self.inner.root.clone();
        tokio::task::spawn_blocking(move || disk(&root))
            .await
            .map_err(|e| RetrievalError::Storage(format!("record write task failed: {e}")))??;
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(memory(&mut state))
    }
}

fn file_path(root: &Path, id: &str) -> PathBuf {
    root.join("files").join(format!("{id}.json"))
}
fn store_path(root: &Path, id: &str) -> PathBuf {
    root.join("stores").join(format!("{id}.json"))
}
fn store_file_path(root: &Path, store: &str, file: &str) -> PathBuf {
    root.join("store_files")
        .join(store)
        .join(format!("{file}.json"))
}
fn batch_path(root: &Path, store: &str, batch: &str) -> PathBuf {
    root.join("batches")
        .join(store)
        .join(format!("{batch}.json"))
}

impl Records for DirRecords {
    fn put_file(&self, file: FileRecord) -> BoxFuture<'_, Result<()>> {
        async move {
            check_id(&file.id)?;
            let disk = file.clone();
            self.write(
                move |root| write_atomic(&file_path(root, &disk.id), &disk),
                move |s| {
                    s.files.insert(file.id.clone(), file);
                },
            )
            .await
        }
        .boxed()
    }

    fn get_file<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<FileRecord>>> {
        let found = self.read(|s| s.files.get(id).cloned());
        async move { Ok(found) }.boxed()
    }

    fn list_files(&self) -> BoxFuture<'_, Result<Vec<FileRecord>>> {
        let all = self.read(|s| s.files.values().cloned().collect());
        async move { Ok(all) }.boxed()
    }

    fn delete_file<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        async move {
            if !safe_id(id) {
                return Ok(false);
            }
            let owned = id.to_owned();
            self.write(
                move |root| remove(&file_path(root, &owned)),
                |s| s.files.remove(id).is_some(),
            )
            .await
        }
        .boxed()
    }

    fn put_store(&self, store: StoreRecord) -> BoxFuture<'_, Result<()>> {
        async move {
            check_id(&store.id)?;
            let disk = store.clone();
            self.write(
                move |root| write_atomic(&store_path(root, &disk.id), &disk),
                move |s| {
                    s.stores.insert(store.id.clone(), store);
                },
            )
            .await
        }
        .boxed()
    }

    fn get_store<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<StoreRecord>>> {
        let found = self.read(|s| s.stores.get(id).cloned());
        async move { Ok(found) }.boxed()
    }

    fn list_stores(&self) -> BoxFuture<'_, Result<Vec<StoreRecord>>> {
        let all = self.read(|s| s.stores.values().cloned().collect());
        async move { Ok(all) }.boxed()
    }

    fn delete_store<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        async move {
            if !safe_id(id) {
                return Ok(false);
            }
            let owned = id.to_owned();
            self.write(
                move |root| {
                    // The store record goes first: a crash after it leaves only orphans,
                    // which no listing reaches and the next delete of the id removes.
                    remove(&store_path(root, &owned))?;
                    for sub in ["store_files", "batches"] {
                        let dir = root.join(sub).join(&owned);
                        match std::fs::remove_dir_all(&dir) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(io(&dir, &e)),
                        }
                    }
                    Ok(())
                },
                |s| {
                    s.store_files.remove(id);
                    s.batches.remove(id);
                    s.stores.remove(id).is_some()
                },
            )
            .await
        }
        .boxed()
    }

    fn put_store_file(&self, file: StoreFileRecord) -> BoxFuture<'_, Result<()>> {
        async move {
            check_id(&file.store_id)?;
            check_id(&file.file_id)?;
            let disk = file.clone();
            self.write(
                move |root| {
                    write_atomic(&store_file_path(root, &disk.store_id, &disk.file_id), &disk)
                },
                move |s| {
                    s.store_files
                        .entry(file.store_id.clone())
                        .or_default()
                        .insert(file.file_id.clone(), file);
                },
            )
            .await
        }
        .boxed()
    }

    fn get_store_file<'a>(
        &'a self,
        store_id: &'a str,
        file_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoreFileRecord>>> {
        let found = self.read(|s| {
            s.store_files
                .get(store_id)
                .and_then(|m| m.get(file_id))
                .cloned()
        });
        async move { Ok(found) }.boxed()
    }

    fn list_store_files<'a>(
        &'a self,
        store_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoreFileRecord>>> {
        let all = self.read(|s| {
            s.store_files
                .get(store_id)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default()
        });
        async move { Ok(all) }.boxed()
    }

    fn delete_store_file<'a>(
        &'a self,
        store_id: &'a str,
        file_id: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        async move {
            if !safe_id(store_id) || !safe_id(file_id) {
                return Ok(false);
            }
            let (store, file) = (store_id.to_owned(), file_id.to_owned());
            self.write(
                move |root| remove(&store_file_path(root, &store, &file)),
                |s| {
                    s.store_files
                        .get_mut(store_id)
                        .and_then(|m| m.remove(file_id))
                        .is_some()
                },
            )
            .await
        }
        .boxed()
    }

    fn pending_store_files(&self) -> BoxFuture<'_, Result<Vec<StoreFileRecord>>> {
        let all = self.read(|s| {
            s.store_files
                .values()
                .flat_map(BTreeMap::values)
                .filter(|f| {
                    f.status == FileStatus::InProgress && s.stores.contains_key(&f.store_id)
                })
                .cloned()
                .collect()
        });
        async move { Ok(all) }.boxed()
    }

    fn put_batch(&self, batch: BatchRecord) -> BoxFuture<'_, Result<()>> {
        async move {
            check_id(&batch.store_id)?;
            check_id(&batch.id)?;
            let disk = batch.clone();
            self.write(
                move |root| write_atomic(&batch_path(root, &disk.store_id, &disk.id), &disk),
                move |s| {
                    s.batches
                        .entry(batch.store_id.clone())
                        .or_default()
                        .insert(batch.id.clone(), batch);
                },
            )
            .await
        }
        .boxed()
    }

    fn get_batch<'a>(
        &'a self,
        store_id: &'a str,
        batch_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<BatchRecord>>> {
        let found = self.read(|s| {
            s.batches
                .get(store_id)
                .and_then(|m| m.get(batch_id))
                .cloned()
        });
        async move { Ok(found) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::LastError;
    use serde_json::{Map, json};

    fn store_file(store: &str, file: &str, status: FileStatus) -> StoreFileRecord {
        StoreFileRecord {
            store_id: store.into(),
            file_id: file.into(),
            created_at: 1,
            status,
            last_error: (status == FileStatus::Failed).then(|| LastError {
                code: "invalid_file".into(),
                message: "empty".into(),
            }),
            usage_bytes: 0,
            chunks: 0,
            attributes: Map::new(),
            chunking_strategy: json!({"type": "auto"}),
            batch_id: None,
            revision: 0,
        }
    }

    #[tokio::test]
    async fn records_survive_a_reopen_and_deletes_stick() {
        let dir = tempfile::tempdir().unwrap();
        let r = DirRecords::open(dir.path()).unwrap();
        r.put_file(FileRecord {
            id: "file-1".into(),
            bytes: 3,
            created_at: 5,
            filename: "a.txt".into(),
            purpose: "assistants".into(),
            content_type: None,
            owner: Some("key-a".into()),
        })
        .await
        .unwrap();
        r.put_store(StoreRecord {
            id: "vs_1".into(),
            name: Some("n".into()),
            created_at: 1,
            last_active_at: 1,
            metadata: Map::new(),
            expires_after: None,
            model: "m".into(),
            dimension: 4,
            chunking_strategy: json!({"type": "auto"}),
            owner: None,
        })
        .await
        .unwrap();
        r.put_store_file(store_file("vs_1", "file-1", FileStatus::InProgress))
            .await
            .unwrap();
        r.put_store_file(store_file("vs_1", "file-2", FileStatus::Failed))
            .await
            .unwrap();
        std::fs::write(dir.path().join("files/half.json.tmp"), b"{\"id\":").unwrap();
        drop(r);

        let r = DirRecords::open(dir.path()).unwrap();
        assert_eq!(r.get_file("file-1").await.unwrap().unwrap().bytes, 3);
        assert!(!dir.path().join("files/half.json.tmp").exists());
        assert_eq!(r.list_store_files("vs_1").await.unwrap().len(), 2);
        let pending = r.pending_store_files().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].file_id, "file-1");
        assert!(r.delete_store("vs_1").await.unwrap());
        assert!(r.delete_file("file-1").await.unwrap());
        assert!(!r.delete_file("file-1").await.unwrap());
        drop(r);

        let r = DirRecords::open(dir.path()).unwrap();
        assert!(r.get_file("file-1").await.unwrap().is_none());
        assert!(r.get_store("vs_1").await.unwrap().is_none());
        assert!(r.list_store_files("vs_1").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn unsafe_ids_are_refused_and_never_found() {
        let dir = tempfile::tempdir().unwrap();
        let r = DirRecords::open(dir.path()).unwrap();
        assert!(r.get_file("../x").await.unwrap().is_none());
        assert!(!r.delete_file("../x").await.unwrap());
        let mut f = store_file("vs_1", "../../etc", FileStatus::Completed);
        assert!(r.put_store_file(f.clone()).await.is_err());
        f.file_id = "ok".into();
        assert!(r.put_store_file(f).await.is_ok());
    }
}
