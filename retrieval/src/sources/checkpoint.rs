//! A source's sync checkpoint: the greatest `(updated_at, id)` read, persisted after every
//! page as `<dir>/<source>.json` (written to a temporary file, then renamed), so a sync
//! resumes where the last one stopped, crash included.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The keyset position of a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `updated_at` of the last row read, in microseconds since the Unix epoch.
    pub updated_at_us: i64,
    /// Its id, as text.
    pub id: String,
    /// Rows read since the source was first synced.
    pub rows_total: u64,
}

/// The checkpoints of every source, one file each in a directory.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    dir: PathBuf,
}

impl CheckpointDir {
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, source: &str) -> PathBuf {
        self.dir.join(format!("{source}.json"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The source's checkpoint; `None` before its first page.
    pub async fn load(&self, source: &str) -> std::io::Result<Option<Checkpoint>> {
        match tokio::fs::read(self.path(source)).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the source's checkpoint durably.
    pub async fn save(&self, source: &str, checkpoint: &Checkpoint) -> std::io::Result<()> {
        let path = self.path(source);
        let tmp = self.dir.join(format!(".{source}.json.tmp"));
        let bytes = serde_json::to_vec(checkpoint)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        tokio::fs::write(&tmp, bytes).await?;
        let file = tokio::fs::File::open(&tmp).await?;
        file.sync_all().await?;
        tokio::fs::rename(&tmp, &path).await
    }

    /// Forgets the source's checkpoint (the next sync reads every row).
    pub async fn reset(&self, source: &str) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.path(source)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
