//! A collection's own metadata file, `nfai_collection.json`, beside qdrant-edge's files: the
//! embedding model and dimension it is pinned to and its attribute registry.
//!
//! The file is written atomically (temporary file, fsync, rename) and is the collection's
//! commit mark: a directory without it is a creation that never finished.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Result, RetrievalError};
use crate::filter::AttributeRegistry;
use crate::types::CollectionSpec;

/// File name of the metadata inside a collection's directory.
pub const META_FILE: &str = "nfai_collection.json";
const FORMAT_VERSION: u32 = 1;

/// What nfai records about one collection.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CollectionMeta {
    pub format: u32,
    pub spec: CollectionSpec,
    pub attributes: AttributeRegistry,
}

impl CollectionMeta {
    pub fn new(spec: CollectionSpec) -> Self {
        Self {
            format: FORMAT_VERSION,
            spec,
            attributes: AttributeRegistry::default(),
        }
    }

    /// Reads the metadata of the collection in `dir`; `None` when the file does not exist.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(META_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&path, &e)),
        };
        let meta: Self = serde_json::from_slice(&bytes).map_err(|e| {
            RetrievalError::Storage(format!("{} is not valid: {e}", path.display()))
        })?;
        if meta.format != FORMAT_VERSION {
            return Err(RetrievalError::Storage(format!(
                "{} has format {}, this build reads {FORMAT_VERSION}",
                path.display(),
                meta.format
            )));
        }
        Ok(Some(meta))
    }

    /// Writes the metadata atomically into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(META_FILE);
        let tmp = dir.join(format!("{META_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| RetrievalError::Storage(format!("encoding collection metadata: {e}")))?;
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| io_error(&path, &e))
    }
}

pub(crate) fn io_error(path: &Path, e: &std::io::Error) -> RetrievalError {
    RetrievalError::Storage(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AttributeKind;

    #[test]
    fn metadata_round_trips_and_absence_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(CollectionMeta::load(dir.path()).unwrap(), None);
        let mut meta = CollectionMeta::new(CollectionSpec {
            model: "multilingual-e5-small".into(),
            dimension: 384,
        });
        meta.attributes
            .insert("region".into(), AttributeKind::String);
        meta.save(dir.path()).unwrap();
        assert_eq!(CollectionMeta::load(dir.path()).unwrap(), Some(meta));
    }

    #[test]
    fn a_corrupt_file_is_a_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(META_FILE), b"{not json").unwrap();
        assert!(matches!(
            CollectionMeta::load(dir.path()),
            Err(RetrievalError::Storage(_))
        ));
    }
}
