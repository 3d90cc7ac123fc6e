//! [`BlobDir`]: the bytes of uploaded files, one file per id under `<data dir>/files/`.
//!
//! An upload streams into `.upload-<id>` through a [`BlobWriter`] that refuses to grow past
//! the limit; [`BlobWriter::commit`] fsyncs it and renames it into place, so a crash or an
//! aborted upload never leaves a partial file under a real id. A writer dropped without commit
//! removes its temporary file.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

/// Why an upload could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The upload is larger than `[files] max_bytes`.
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The disk is full or a file operation failed.
    #[error("cannot store the file: {0}")]
    Io(String),
}

/// The directory of uploaded files' bytes.
#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
}

impl BlobDir {
    /// The blob directory `root` (created if missing; blocking), with stale uploads removed.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        for entry in std::fs::read_dir(&root)? {
            let path = entry?.path();
            let stale = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".upload-"));
            if stale {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(Self { root })
    }

    /// The path of a stored file's bytes. `id` must be a record id (see `safe_id`).
    pub fn path(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Starts an upload of at most `limit` bytes for `id`.
    pub async fn begin(&self, id: &str, limit: u64) -> Result<BlobWriter, BlobError> {
        if !super::safe_id(id) {
            return Err(BlobError::Io(format!("`{id}` is not a valid file id")));
        }
        let tmp = self.root.join(format!(".upload-{id}"));
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| BlobError::Io(format!("{}: {e}", tmp.display())))?;
        Ok(BlobWriter {
            file: Some(file),
            tmp,
            target: self.path(id),
            root: self.root.clone(),
            written: 0,
            limit,
        })
    }

    /// Reads a stored file whole (blocking; call from the blocking pool).
    pub fn read_blocking(&self, id: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(id))
    }

    /// Deletes a stored file's bytes; a missing file is not an error.
    pub async fn delete(&self, id: &str) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.path(id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// An upload in progress.
#[derive(Debug)]
pub struct BlobWriter {
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    target: PathBuf,
    root: PathBuf,
    written: u64,
    limit: u64,
}

impl BlobWriter {
    /// Appends a piece of the upload; past the limit, [`BlobError::TooLarge`].
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        let total = self.written.saturating_add(bytes.len() as u64);
        if total > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| BlobError::Io("the upload was already committed".into()))?;
        file.write_all(bytes)
            .await
            .map_err(|e| BlobError::Io(format!("{}: {e}", self.tmp.display())))?;
        self.written = total;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Makes the upload durable under its id; returns its size.
    pub async fn commit(mut self) -> Result<u64, BlobError> {
        let io = |p: &Path, e: std::io::Error| BlobError::Io(format!("{}: {e}", p.display()));
        let mut file = self
            .file
            .take()
            .ok_or_else(|| BlobError::Io("the upload was already committed".into()))?;
        file.flush().await.map_err(|e| io(&self.tmp, e))?;
        file.sync_all().await.map_err(|e| io(&self.tmp, e))?;
        drop(file);
        tokio::fs::rename(&self.tmp, &self.target)
            .await
            .map_err(|e| io(&self.target, e))?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(&root)?.sync_all())
            .await
            .map_err(|e| BlobError::Io(e.to_string()))?
            .map_err(|e| io(&self.root, e))?;
        // Renamed: nothing left for Drop to remove.
        self.tmp = PathBuf::new();
        Ok(self.written)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn uploads_commit_whole_and_oversize_ones_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path()).unwrap();
        let mut w = blobs.begin("file-a", 5).await.unwrap();
        w.write(b"abc").await.unwrap();
        w.write(b"de").await.unwrap();
        assert_eq!(w.commit().await.unwrap(), 5);
        assert_eq!(blobs.read_blocking("file-a").unwrap(), b"abcde");

        let mut w = blobs.begin("file-b", 5).await.unwrap();
        w.write(b"abc").await.unwrap();
        assert!(matches!(
            w.write(b"def").await,
            Err(BlobError::TooLarge { limit: 5 })
        ));
        drop(w);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file-a")]);
    }
}
