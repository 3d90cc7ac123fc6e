//! Where keys live: the [`KeyStore`] trait, [`FileKeyStore`] (`keys.json` in the data
//! directory, written whole and renamed into place, so a reader never sees half a file) and
//! [`read_keys_file`] (`[auth] keys_file`, a static TOML list for fixed setups).
//!
//! The server and `nfai keys` use the same store, so keys can be made offline before the first
//! start. With `[database] url` the keys live in PostgreSQL instead
//! ([`super::pg_store::PgKeyStore`]), shared by every replica.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::auth::key::{KeyRecord, hash_secret};

/// A store that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the key store {path} cannot be read or written: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key store {path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("no key with id {0:?}")]
    NotFound(String),
    #[error("the key store in the database cannot be read or written: {0}")]
    Database(String),
}

/// Keys that can be listed, added and removed.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Every stored key.
    fn list(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, StoreError>>;
    /// Adds `record`.
    fn insert(&self, record: KeyRecord) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Removes the key `id`; [`StoreError::NotFound`] when there is none.
    fn remove(&self, id: String) -> BoxFuture<'_, Result<KeyRecord, StoreError>>;
    /// A value that changes whenever the stored keys may have changed (another process
    /// writing them); `None` when the store cannot tell.
    fn version(&self) -> BoxFuture<'_, Option<String>>;
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeysJson {
    keys: Vec<KeyRecord>,
}

/// `keys.json` in a folder.
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    path: PathBuf,
}

impl FileKeyStore {
    /// The store in `data_dir` (the file is made on the first write).
    pub fn in_dir(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join("keys.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn read(&self) -> Result<KeysJson, StoreError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeysJson::default()),
            Err(e) => Err(self.io(e)),
        }
    }

    fn write(&self, keys: &KeysJson) -> Result<(), StoreError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let text = serde_json::to_vec_pretty(keys).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let tmp = dir.join(format!(".keys.json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| self.io(e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| self.io(e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))
    }

    /// Every stored key (blocking).
    pub fn list_now(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self.read()?.keys)
    }

    /// Adds a key (blocking).
    pub fn insert_now(&self, record: KeyRecord) -> Result<(), StoreError> {
        let mut keys = self.read()?;
        keys.keys.push(record);
        self.write(&keys)
    }

    /// Removes a key (blocking).
    pub fn remove_now(&self, id: &str) -> Result<KeyRecord, StoreError> {
        let mut keys = self.read()?;
        let at = keys
            .keys
            .iter()
            .position(|k| k.id == id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let gone = keys.keys.remove(at);
        self.write(&keys)?;
        Ok(gone)
    }

    fn version_now(&self) -> Option<String> {
        let meta = std::fs::metadata(&self.path).ok()?;
        Some(format!("{:?}/{}", meta.modified().ok()?, meta.len()))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StoreError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        })
    })
}

impl KeyStore for FileKeyStore {
    fn list(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, StoreError>> {
        let s = self.clone();
        Box::pin(blocking(move || s.list_now()))
    }

    fn insert(&self, record: KeyRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        let s = self.clone();
        Box::pin(blocking(move || s.insert_now(record)))
    }

    fn remove(&self, id: String) -> BoxFuture<'_, Result<KeyRecord, StoreError>> {
        let s = self.clone();
        Box::pin(blocking(move || s.remove_now(&id)))
    }

    fn version(&self) -> BoxFuture<'_, Option<String>> {
        let s = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || s.version_now())
                .await
                .ok()
                .flatten()
        })
    }
}

/// One key of a keys file: the secret itself or its hex SHA-256.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    name: String,
    secret: Option<String>,
    sha256: Option<String>,
    models: Option<Vec<String>>,
    rpm: Option<u64>,
    tpm: Option<u64>,
    expires_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysToml {
    #[serde(default)]
    keys: Vec<FileKey>,
}

/// The keys of a `[auth] keys_file`:
///
/// ```toml
/// [[keys]]
/// name = "crm-backend"
/// sha256 = "…"        # or: secret = "nfai-…"
/// models = ["default"] # optional
/// rpm = 600            # optional
/// tpm = 200000         # optional
/// ```
///
/// Their ids are `file-<name>`; they cannot be revoked over the API.
pub fn read_keys_file(path: &Path) -> anyhow::Result<Vec<KeyRecord>> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading auth.keys_file {}", path.display()))?;
    let parsed: KeysToml = toml::from_str(&text)
        .with_context(|| format!("parsing auth.keys_file {}", path.display()))?;
    let mut out: Vec<KeyRecord> = Vec::new();
    for k in parsed.keys {
        let sha256 = match (k.secret, k.sha256) {
            (Some(s), None) if s.len() >= 16 => hash_secret(&s),
            (None, Some(h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                h.to_ascii_lowercase()
            }
            _ => anyhow::bail!(
                "auth.keys_file {}: key {:?} needs exactly one of `secret` (16 characters or more) or `sha256` (64 hex digits)",
                path.display(),
                k.name
            ),
        };
        let id = format!("file-{}", k.name);
        anyhow::ensure!(
            !out.iter().any(|o| o.id == id),
            "auth.keys_file {}: the name {:?} is used twice",
            path.display(),
            k.name
        );
        out.push(KeyRecord {
            id,
            name: k.name,
            sha256,
            models: k.models,
            rpm: k.rpm.filter(|&n| n > 0),
            tpm: k.tpm.filter(|&n| n > 0),
            expires_at: k.expires_at,
            created_at: 0,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::key::NewKey;

    #[test]
    fn the_file_store_keeps_records_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let a = FileKeyStore::in_dir(&dir.path().join("sub"));
        assert!(a.list_now().unwrap().is_empty());
        let (r, secret) = NewKey {
            name: "x".into(),
            ..Default::default()
        }
        .issue(1);
        a.insert_now(r.clone()).unwrap();
        let b = FileKeyStore::in_dir(&dir.path().join("sub"));
        assert_eq!(b.list_now().unwrap(), vec![r.clone()]);
        let text = std::fs::read_to_string(b.path()).unwrap();
        assert!(!text.contains(&secret));
        assert!(matches!(b.remove_now("nope"), Err(StoreError::NotFound(_))));
        assert_eq!(b.remove_now(&r.id).unwrap(), r);
        assert!(a.list_now().unwrap().is_empty());
    }

    #[test]
    fn keys_files_take_a_secret_or_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys.toml");
        std::fs::write(
            &p,
            format!(
                "[[keys]]\nname = \"a\"\nsecret = \"0123456789abcdefXYZ\"\nrpm = 5\n\
                 [[keys]]\nname = \"b\"\nsha256 = \"{}\"\n",
                hash_secret("other-secret-value")
            ),
        )
        .unwrap();
        let keys = read_keys_file(&p).unwrap();
        assert_eq!(keys[0].sha256, hash_secret("0123456789abcdefXYZ"));
        assert_eq!((keys[0].id.as_str(), keys[0].rpm), ("file-a", Some(5)));
        assert_eq!(keys[1].sha256, hash_secret("other-secret-value"));
        std::fs::write(&p, "[[keys]]\nname = \"a\"\n").unwrap();
        assert!(read_keys_file(&p).is_err());
    }
}
