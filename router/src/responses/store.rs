//! Stored responses: one JSON file per response under `<data dir>/responses/`, written
//! atomically (a temporary file renamed over the name), with a retention limit.
//!
//! A record keeps the response object as answered, its owner (the key that made it; see
//! `crate::auth::Caller`) and the conversation it ended (every message of its prompt but the
//! system one, then its answer), which `previous_response_id` continues.
//!
//! Retention: at most `max_stored` records, and none older than `retention_secs` when set; the
//! oldest go first. An in-memory index (stored time, id), rebuilt from the files at start,
//! decides what to remove without reading the files. Ids are checked against the shape this
//! server makes (`resp_` and hex) before they become file names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many responses are kept, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// At least 1.
    pub max_stored: usize,
    /// Records older than this are removed; `None`: kept until `max_stored` pushes them out.
    pub retention_secs: Option<u64>,
}

/// A failure of the store's files.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stored responses: {0}")]
    Io(#[from] std::io::Error),
    #[error("a stored response is not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("stored responses: a background task failed: {0}")]
    Task(String),
}

/// One message of a stored conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

/// One stored response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub id: String,
    /// The API key's id that made it; `None` for the admin token or a server without keys.
    pub owner: Option<String>,
    /// Unix milliseconds when it was stored.
    pub stored_at_ms: u64,
    /// The response object as answered.
    pub response: Value,
    /// The conversation it ended, its answer last.
    pub conversation: Vec<Turn>,
}

/// The stored responses; cheap to clone.
#[derive(Debug, Clone)]
pub struct ResponseStore(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    retention: Retention,
    /// (stored_at_ms, id) of every record on disk.
    index: Mutex<BTreeSet<(u64, String)>>,
}

/// Whether `id` has the shape of an id this server makes.
pub fn valid_id(id: &str) -> bool {
    id.strip_prefix("resp_").is_some_and(|hex| {
        !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

impl ResponseStore {
    /// Opens (creating) `dir` and indexes the records in it; unreadable files are skipped with a
    /// warning. Blocking: call at start.
    pub fn open(dir: &Path, retention: Retention) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        let mut index = BTreeSet::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match read(&path) {
                Ok(r) => {
                    index.insert((r.stored_at_ms, r.id));
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping a stored response")
                }
            }
        }
        Ok(Self(Arc::new(Inner {
            dir: dir.to_owned(),
            retention,
            index: Mutex::new(index),
        })))
    }

    fn path(&self, id: &str) -> PathBuf {
        self.0.dir.join(format!("{id}.json"))
    }

    fn index(&self) -> std::sync::MutexGuard<'_, BTreeSet<(u64, String)>> {
        self.0.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `record` (its `stored_at_ms` is set now), then removes what retention no longer
    /// keeps.
    pub async fn put(&self, mut record: StoredResponse) -> Result<(), StoreError> {
        if !valid_id(&record.id) {
            return Err(StoreError::Task(format!(
                "invalid response id {}",
                record.id
            )));
        }
        record.stored_at_ms = now_ms();
        let path = self.path(&record.id);
        let bytes = serde_json::to_vec(&record)?;
        blocking(move || write_atomic(&path, &bytes)).await?;
        let expired = {
            let mut index = self.index();
            index.insert((record.stored_at_ms, record.id.clone()));
            self.expired(&mut index, record.stored_at_ms)
        };
        self.remove_files(expired).await
    }

    /// Takes the ids retention no longer keeps out of `index`.
    fn expired(&self, index: &mut BTreeSet<(u64, String)>, now: u64) -> Vec<String> {
        let mut gone = Vec::new();
        let cutoff = self
            .0
            .retention
            .retention_secs
            .map(|s| now.saturating_sub(s.saturating_mul(1000)));
        while let Some(first) = index.first() {
            let too_many = index.len() > self.0.retention.max_stored;
            let too_old = cutoff.is_some_and(|c| first.0 < c);
            if !(too_many || too_old) {
                break;
            }
            if let Some((_, id)) = index.pop_first() {
                gone.push(id);
            }
        }
        gone
    }

    async fn remove_files(&self, ids: Vec<String>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let paths: Vec<PathBuf> = ids.iter().map(|id| self.path(id)).collect();
        blocking(move || {
            for p in paths {
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        })
        .await
    }

    /// The record `id`, if stored and still within retention.
    pub async fn get(&self, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let expired = {
            let mut index = self.index();
            self.expired(&mut index, now_ms())
        };
        self.remove_files(expired).await?;
        let path = self.path(id);
        blocking(move || match read(&path) {
            Ok(r) => Ok(Some(r)),
            Err(StoreError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    /// Removes `id`; whether it was stored.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        if !valid_id(id) {
            return Ok(false);
        }
        self.index().retain(|(_, i)| i != id);
        let path = self.path(id);
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        })
        .await
    }

    /// How many records are stored.
    pub fn len(&self) -> usize {
        self.index().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn read(path: &Path) -> Result<StoredResponse, StoreError> {
    let bytes = std::fs::read(path)?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{:016x}", rand::random::<u64>()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(written?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(n: u32) -> StoredResponse {
        StoredResponse {
            id: format!("resp_{n:032x}"),
            owner: Some("key-a".into()),
            stored_at_ms: 0,
            response: json!({"id": format!("resp_{n:032x}"), "object": "response"}),
            conversation: vec![Turn {
                role: "user".into(),
                content: "Xin chào".into(),
            }],
        }
    }

    fn keep(max_stored: usize) -> Retention {
        Retention {
            max_stored,
            retention_secs: None,
        }
    }

    #[tokio::test]
    async fn put_get_delete_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResponseStore::open(dir.path(), keep(10)).unwrap();
        store.put(record(1)).await.unwrap();
        let got = store.get(&record(1).id).await.unwrap().unwrap();
        assert_eq!(got.conversation, record(1).conversation);
        assert!(got.stored_at_ms > 0);
        let reopened = ResponseStore::open(dir.path(), keep(10)).unwrap();
        assert_eq!(reopened.len(), 1);
        assert!(reopened.delete(&record(1).id).await.unwrap());
        assert!(!reopened.delete(&record(1).id).await.unwrap());
        assert!(reopened.get(&record(1).id).await.unwrap().is_none());
        assert!(reopened.is_empty());
    }

    #[tokio::test]
    async fn the_oldest_go_first_past_max_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResponseStore::open(dir.path(), keep(2)).unwrap();
        for n in 1..=3 {
            store.put(record(n)).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        assert_eq!(store.len(), 2);
        assert!(store.get(&record(1).id).await.unwrap().is_none());
        assert!(store.get(&record(3).id).await.unwrap().is_some());
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 2);
    }

    #[tokio::test]
    async fn records_past_retention_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResponseStore::open(
            dir.path(),
            Retention {
                max_stored: 10,
                retention_secs: Some(0),
            },
        )
        .unwrap();
        store.put(record(1)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(store.get(&record(1).id).await.unwrap().is_none());
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn ids_of_another_shape_never_reach_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResponseStore::open(dir.path(), keep(10)).unwrap();
        for id in ["../etc/passwd", "resp_", "resp_zz", "resp_../x", "file-1"] {
            assert!(!valid_id(id), "{id}");
            assert!(store.get(id).await.unwrap().is_none());
            assert!(!store.delete(id).await.unwrap());
        }
        assert!(valid_id(&record(7).id));
    }
}
