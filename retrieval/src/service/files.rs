//! Uploaded files: the record after the bytes are stored, reading, listing, deleting.
//! Deleting a file leaves the chunks already ingested from it in stores, as OpenAI does;
//! removing it from a store is a store-file delete.

use super::page::{ListQuery, Page, paginate};
use super::{Access, RetrievalService, check, ids};
use crate::error::{Result, RetrievalError};
use crate::records::{BlobError, BlobStream, BlobWriter, FileRecord};

/// OpenAI's `purpose` values accepted on upload.
pub const PURPOSES: [&str; 6] = [
    "assistants",
    "batch",
    "fine-tune",
    "vision",
    "user_data",
    "evals",
];

fn missing_file(id: &str) -> RetrievalError {
    RetrievalError::Missing {
        what: "File",
        id: id.to_owned(),
    }
}

impl RetrievalService {
    /// A fresh file id and a writer for its bytes, limited by `max_file_bytes`.
    pub async fn begin_upload(&self) -> std::result::Result<(String, BlobWriter), BlobError> {
        let id = ids::new_id("file-");
        let writer = self
            .0
            .blobs
            .begin(&id, self.0.options.max_file_bytes)
            .await?;
        Ok((id, writer))
    }

    /// Records an upload whose bytes `writer` holds: commits them, then writes the record.
    pub async fn finish_upload(
        &self,
        id: String,
        writer: BlobWriter,
        filename: String,
        purpose: String,
        content_type: Option<String>,
        owner: Option<String>,
    ) -> Result<FileRecord> {
        if !PURPOSES.contains(&purpose.as_str()) {
            return Err(RetrievalError::InvalidArgument {
                field: "purpose",
                reason: format!("must be one of {}", PURPOSES.join(", ")),
            });
        }
        if filename.is_empty() || filename.chars().count() > 512 {
            return Err(RetrievalError::InvalidArgument {
                field: "file",
                reason: "the file name must be 1..=512 characters".into(),
            });
        }
        let bytes = writer
            .commit()
            .await
            .map_err(|e| RetrievalError::Storage(e.to_string()))?;
        let record = FileRecord {
            id,
            bytes,
            created_at: ids::now(),
            filename,
            purpose,
            content_type,
            owner,
        };
        if let Err(e) = self.0.records.put_file(record.clone()).await {
            let _ = self.0.blobs.delete(&record.id).await;
            return Err(e);
        }
        Ok(record)
    }

    pub async fn file(&self, id: &str) -> Result<FileRecord> {
        self.0
            .records
            .get_file(id)
            .await?
            .ok_or_else(|| missing_file(id))
    }

    /// A page of the files `access` reads, optionally only those of one `purpose`.
    pub async fn list_files(
        &self,
        query: &ListQuery,
        purpose: Option<&str>,
        access: &Access,
    ) -> Result<Page<FileRecord>> {
        let mut all = self.0.records.list_files().await?;
        all.retain(|f| access.reads(f.owner.as_deref()));
        if let Some(purpose) = purpose {
            all.retain(|f| f.purpose == purpose);
        }
        paginate(all, |f| (f.created_at, f.id.as_str()), query)
    }

    /// Deletes a file's record and bytes.
    pub async fn delete_file(&self, id: &str) -> Result<()> {
        if !self.0.records.delete_file(id).await? {
            return Err(missing_file(id));
        }
        self.0
            .blobs
            .delete(id)
            .await
            .map_err(|e| RetrievalError::Storage(format!("cannot delete the bytes of {id}: {e}")))
    }

    /// A file's record and its bytes as a stream of pieces.
    pub async fn file_content(&self, id: &str) -> Result<(FileRecord, BlobStream)> {
        let record = self.file(id).await?;
        let stream = self.0.blobs.stream(&record.id).await.map_err(|e| match e {
            BlobError::Missing(_) => RetrievalError::Storage(format!(
                "the bytes of {id} are missing from the file store"
            )),
            e => RetrievalError::Unavailable(e.to_string()),
        })?;
        Ok((record, stream))
    }

    /// Checks `metadata` (exposed for the store routes).
    pub fn check_metadata(map: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
        check::metadata(map)
    }
}
