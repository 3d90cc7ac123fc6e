//! [`BlobDir`]: the bytes of uploaded files, one file per id under `<data dir>/files/`.
//!
//! An upload streams into `.upload-<id>`; committing fsyncs it and renames it into place, then
//! fsyncs the directory. A sink dropped without commit removes its temporary file, and stale
//! ones are removed at open.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::blobs::{BlobError, BlobSink, BlobStream, BlobWriter, Blobs, check_blob_id};

/// Bytes per piece when a file is streamed.
const READ_BYTES: usize = 256 * 1024;

/// The directory of uploaded files' bytes.
#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
}

fn io(path: &Path, e: &std::io::Error) -> BlobError {
    BlobError::Io(format!("{}: {e}", path.display()))
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

    fn path(&self, id: &str) -> Result<PathBuf, BlobError> {
        check_blob_id(id)?;
        Ok(self.root.join(id))
    }

    async fn open_file(&self, id: &str) -> Result<tokio::fs::File, BlobError> {
        let path = self.path(id)?;
        tokio::fs::File::open(&path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => BlobError::Missing(id.to_owned()),
                _ => io(&path, &e),
            })
    }
}

impl Blobs for BlobDir {
    fn begin<'a>(
        &'a self,
        id: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, Result<BlobWriter, BlobError>> {
        async move {
            let target = self.path(id)?;
            let tmp = self.root.join(format!(".upload-{id}"));
            let file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| io(&tmp, &e))?;
            let sink = DirSink {
                file: Some(file),
                tmp,
                target,
                root: self.root.clone(),
            };
            Ok(BlobWriter::new(Box::new(sink), limit))
        }
        .boxed()
    }

    fn read<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<u8>, BlobError>> {
        async move {
            let mut file = self.open_file(id).await?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .await
                .map_err(|e| BlobError::Io(format!("reading {id}: {e}")))?;
            Ok(bytes)
        }
        .boxed()
    }

    fn stream<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<BlobStream, BlobError>> {
        async move {
            let file = self.open_file(id).await?;
            let id = id.to_owned();
            let pieces = futures::stream::unfold(Some(file), move |file| {
                let id = id.clone();
                async move {
                    let mut file = file?;
                    let mut buf = vec![0u8; READ_BYTES];
                    match file.read(&mut buf).await {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            Some((Ok(buf), Some(file)))
                        }
                        Err(e) => Some((Err(BlobError::Io(format!("reading {id}: {e}"))), None)),
                    }
                }
            });
            Ok(pieces.boxed())
        }
        .boxed()
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        async move {
            let path = self.path(id)?;
            match tokio::fs::remove_file(&path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path, &e)),
                _ => Ok(()),
            }
        }
        .boxed()
    }
}

/// An upload into a temporary file of the blob directory.
struct DirSink {
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    target: PathBuf,
    root: PathBuf,
}

impl BlobSink for DirSink {
    fn append<'a>(&'a mut self, bytes: &'a [u8]) -> BoxFuture<'a, Result<(), BlobError>> {
        async move {
            let file = self
                .file
                .as_mut()
                .ok_or_else(|| BlobError::Io("the upload was already committed".into()))?;
            file.write_all(bytes).await.map_err(|e| io(&self.tmp, &e))
        }
        .boxed()
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<(), BlobError>> {
        async move {
            let mut file = self
                .file
                .take()
                .ok_or_else(|| BlobError::Io("the upload was already committed".into()))?;
            file.flush().await.map_err(|e| io(&self.tmp, &e))?;
            file.sync_all().await.map_err(|e| io(&self.tmp, &e))?;
            drop(file);
            tokio::fs::rename(&self.tmp, &self.target)
                .await
                .map_err(|e| io(&self.target, &e))?;
            // Renamed: nothing left for Drop to remove.
            self.tmp = PathBuf::new();
            let root = self.root.clone();
            tokio::task::spawn_blocking(move || std::fs::File::open(&root)?.sync_all())
                .await
                .map_err(|e| BlobError::Io(e.to_string()))?
                .map_err(|e| io(&self.root, &e))
        }
        .boxed()
    }
}

impl Drop for DirSink {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;

    #[tokio::test]
    async fn uploads_commit_whole_and_oversize_ones_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path()).unwrap();
        let mut w = blobs.begin("file-a", 5).await.unwrap();
        w.write(b"abc").await.unwrap();
        w.write(b"de").await.unwrap();
        assert_eq!(w.commit().await.unwrap(), 5);
        assert_eq!(blobs.read("file-a").await.unwrap(), b"abcde");
        let streamed: Vec<Vec<u8>> = blobs
            .stream("file-a")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(streamed.concat(), b"abcde");

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
        assert!(matches!(
            blobs.read("file-b").await,
            Err(BlobError::Missing(_))
        ));
        blobs.delete("file-a").await.unwrap();
        blobs.delete("file-a").await.unwrap();
        assert!(matches!(blobs.read("../x").await, Err(BlobError::Io(_))));
    }
}
