//! Files attached to a store and file batches. Attaching (or re-attributing) a file marks it
//! `in_progress` with a new revision and hands it to ingestion; deleting it removes its chunks.

use serde_json::{Map, Value};

use super::page::{ListQuery, Page, paginate};
use super::stores::FileCounts;
use super::{RetrievalService, check, ids};
use crate::error::{Result, RetrievalError};
use crate::ingest::{FileKind, extract_text, normalize_text};
use crate::records::{BatchRecord, FileStatus, StoreFileRecord};

/// A file to attach, with its attributes and chunking strategy (absent: the store's).
#[derive(Debug, Clone, Default)]
pub struct AddFile {
    pub file_id: String,
    pub attributes: Map<String, Value>,
    pub chunking_strategy: Option<Value>,
}

/// A batch with its derived counts and status (`in_progress`, `completed`, `cancelled`).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchView {
    pub record: BatchRecord,
    pub file_counts: FileCounts,
    pub status: &'static str,
}

fn missing(what: &'static str, id: &str) -> RetrievalError {
    RetrievalError::Missing {
        what,
        id: id.to_owned(),
    }
}

impl RetrievalService {
    /// Attaches a file to a store (replacing an earlier attachment) and queues its ingestion.
    /// A full queue leaves the file to the sweeper, which queues it when there is room.
    pub async fn add_file(
        &self,
        store_id: &str,
        req: AddFile,
        batch_id: Option<String>,
    ) -> Result<StoreFileRecord> {
        let record = self.attach(store_id, req, batch_id).await?;
        self.submit(&record);
        Ok(record)
    }

    /// [`add_file`](Self::add_file) for a writer that can attach files faster than they are
    /// ingested (a source's sync): waits for room in the ingestion queue, so that the writer
    /// goes at the pace of ingestion and no file waits for the sweeper.
    pub async fn add_file_waiting(&self, store_id: &str, req: AddFile) -> Result<StoreFileRecord> {
        let record = self.attach(store_id, req, None).await?;
        self.queue(&record).await;
        Ok(record)
    }

    /// Records a file as attached and `in_progress` with a new revision.
    async fn attach(
        &self,
        store_id: &str,
        req: AddFile,
        batch_id: Option<String>,
    ) -> Result<StoreFileRecord> {
        let store = self.store_record(store_id).await?;
        self.file(&req.file_id).await?;
        check::attributes(&req.attributes)?;
        let info = self.0.embed.describe(&store.model).await?;
        let chunking = check::chunking(
            req.chunking_strategy.as_ref(),
            &store.chunking_strategy,
            info.limits,
        )?;
        let record = {
            let _edit = self.0.edit.lock().await;
            let previous = self
                .0
                .records
                .get_store_file(store_id, &req.file_id)
                .await?;
            let record = StoreFileRecord {
                store_id: store_id.to_owned(),
                file_id: req.file_id,
                created_at: ids::now(),
                status: FileStatus::InProgress,
                last_error: None,
                usage_bytes: 0,
                chunks: 0,
                attributes: req.attributes,
                chunking_strategy: chunking,
                batch_id,
                revision: previous.map_or(0, |p| p.revision + 1),
            };
            self.0.records.put_store_file(record.clone()).await?;
            record
        };
        Ok(record)
    }

    pub async fn store_file(&self, store_id: &str, file_id: &str) -> Result<StoreFileRecord> {
        self.store_record(store_id).await?;
        self.0
            .records
            .get_store_file(store_id, file_id)
            .await?
            .ok_or_else(|| missing("VectorStoreFile", file_id))
    }

    /// A page of a store's files, optionally of one status and of one batch.
    pub async fn list_store_files(
        &self,
        store_id: &str,
        query: &ListQuery,
        status: Option<FileStatus>,
        batch_id: Option<&str>,
    ) -> Result<Page<StoreFileRecord>> {
        self.store_record(store_id).await?;
        let mut all = self.0.records.list_store_files(store_id).await?;
        all.retain(|f| {
            status.is_none_or(|s| f.status == s)
                && batch_id.is_none_or(|b| f.batch_id.as_deref() == Some(b))
        });
        paginate(all, |f| (f.created_at, f.file_id.as_str()), query)
    }

    /// Replaces a store file's attributes; its chunks are re-ingested with them.
    pub async fn update_attributes(
        &self,
        store_id: &str,
        file_id: &str,
        attributes: Map<String, Value>,
    ) -> Result<StoreFileRecord> {
        check::attributes(&attributes)?;
        let record = {
            let _edit = self.0.edit.lock().await;
            let mut record = self.store_file(store_id, file_id).await?;
            record.attributes = attributes;
            record.status = FileStatus::InProgress;
            record.last_error = None;
            record.revision += 1;
            self.0.records.put_store_file(record.clone()).await?;
            record
        };
        self.submit(&record);
        Ok(record)
    }

    /// Detaches a file from a store and deletes its chunks (the uploaded file stays).
    pub async fn delete_store_file(&self, store_id: &str, file_id: &str) -> Result<()> {
        {
            let _edit = self.0.edit.lock().await;
            self.store_file(store_id, file_id).await?;
            self.0.records.delete_store_file(store_id, file_id).await?;
        }
        self.0.store.delete_file(store_id, file_id).await?;
        self.0.caches.bump(store_id);
        Ok(())
    }

    /// The text of a store file as ingested (extracted and NFC-normalised).
    pub async fn store_file_text(&self, store_id: &str, file_id: &str) -> Result<String> {
        self.store_file(store_id, file_id).await?;
        let file = self.file(file_id).await?;
        let bytes = self
            .0
            .blobs
            .read(&file.id)
            .await
            .map_err(|e| RetrievalError::Storage(format!("cannot read {}: {e}", file.id)))?;
        tokio::task::spawn_blocking(move || {
            let kind =
                FileKind::detect(&file.filename, file.content_type.as_deref()).map_err(|e| {
                    RetrievalError::InvalidArgument {
                        field: "file_id",
                        reason: e.to_string(),
                    }
                })?;
            let text = extract_text(kind, &bytes).map_err(|e| RetrievalError::InvalidArgument {
                field: "file_id",
                reason: e.to_string(),
            })?;
            Ok(normalize_text(&text))
        })
        .await
        .map_err(|e| RetrievalError::Unavailable(format!("file read task failed: {e}")))?
    }

    /// Attaches several files as one batch.
    pub async fn create_batch(&self, store_id: &str, files: Vec<AddFile>) -> Result<BatchView> {
        self.store_record(store_id).await?;
        if files.is_empty() || files.len() > 500 {
            return Err(RetrievalError::InvalidArgument {
                field: "file_ids",
                reason: "must list 1..=500 files".into(),
            });
        }
        for f in &files {
            self.file(&f.file_id).await?;
            check::attributes(&f.attributes)?;
        }
        let record = BatchRecord {
            id: ids::new_id("vsfb_"),
            store_id: store_id.to_owned(),
            created_at: ids::now(),
            file_ids: files.iter().map(|f| f.file_id.clone()).collect(),
            cancelled: false,
        };
        self.0.records.put_batch(record.clone()).await?;
        for f in files {
            self.add_file(store_id, f, Some(record.id.clone())).await?;
        }
        self.batch(store_id, &record.id).await
    }

    pub async fn batch(&self, store_id: &str, batch_id: &str) -> Result<BatchView> {
        self.store_record(store_id).await?;
        let record = self
            .0
            .records
            .get_batch(store_id, batch_id)
            .await?
            .ok_or_else(|| missing("VectorStoreFileBatch", batch_id))?;
        let files = self.0.records.list_store_files(store_id).await?;
        let file_counts = FileCounts::of(
            files
                .iter()
                .filter(|f| f.batch_id.as_deref() == Some(batch_id)),
        );
        let status = if file_counts.in_progress > 0 {
            "in_progress"
        } else if record.cancelled {
            "cancelled"
        } else {
            "completed"
        };
        Ok(BatchView {
            record,
            file_counts,
            status,
        })
    }

    /// Cancels a batch: its files not yet ingested become `cancelled`.
    pub async fn cancel_batch(&self, store_id: &str, batch_id: &str) -> Result<BatchView> {
        {
            let _edit = self.0.edit.lock().await;
            let mut record = self.batch(store_id, batch_id).await?.record;
            record.cancelled = true;
            self.0.records.put_batch(record).await?;
            for mut f in self.0.records.list_store_files(store_id).await? {
                if f.batch_id.as_deref() == Some(batch_id) && f.status == FileStatus::InProgress {
                    f.status = FileStatus::Cancelled;
                    f.revision += 1;
                    let file_id = f.file_id.clone();
                    self.0.records.put_store_file(f).await?;
                    self.0.store.delete_file(store_id, &file_id).await?;
                }
            }
        }
        self.0.caches.bump(store_id);
        self.batch(store_id, batch_id).await
    }
}
