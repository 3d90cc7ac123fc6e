//! The per-model lock and the temporary download folder.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::report::Reporter;

/// Name of the folder, under the model dir, that holds pip's downloads while a fetch runs.
pub(crate) const TMP_DIR: &str = ".fetch-tmp";
/// Name of the lock file under `<model dir>/<id>/`.
pub(crate) const LOCK_FILE: &str = ".fetch.lock";

/// Takes the exclusive lock of the model folder `dir` (created if needed), waiting for another
/// process that holds it. Released when the returned file is dropped.
pub(crate) fn lock_model(dir: &Path, id: &str, out: &Reporter) -> anyhow::Result<File> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            out.line(&format!(
                "{id}: another nfai process is fetching this model; waiting for its lock {}",
                path.display()
            ));
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(file)
}

/// `<model dir>/.fetch-tmp/<id>@<pid>`, removed on drop. Call only while holding the model's
/// lock: creating it first removes folders of the same model left by killed processes.
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub(crate) fn create(model_dir: &Path, id: &str) -> anyhow::Result<Self> {
        let root = model_dir.join(TMP_DIR);
        remove_stale(&root, id);
        let path = root.join(format!("{id}@{}", std::process::id()));
        let mut result = fs::create_dir_all(&path);
        if result.is_err() {
            // Another process may have removed the empty `.fetch-tmp` in between: try once more.
            result = fs::create_dir_all(&path);
        }
        result.with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the folder now (same as dropping it).
    pub(crate) fn remove(self) {}
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove {}: {e}", self.path.display());
        }
        // Leave the model dir tidy; fails harmlessly while other fetches use it.
        if let Some(root) = self.path.parent() {
            let _ = fs::remove_dir(root);
        }
    }
}

/// Removes `<root>/<id>@*` (only this model's folders: the caller holds its lock).
fn remove_stale(root: &Path, id: &str) {
    let Ok(items) = fs::read_dir(root) else {
        return;
    };
    for item in items.flatten() {
        let name = item.file_name();
        let name = name.to_string_lossy();
        if name.rsplit_once('@').is_some_and(|(owner, _)| owner == id) {
            tracing::debug!("removing stale download folder {}", item.path().display());
            let _ = fs::remove_dir_all(item.path());
        }
    }
}
