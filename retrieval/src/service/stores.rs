//! Vector stores: creation (pinned to an embedding model, one collection each), reading with
//! derived `file_counts`, `usage_bytes` and status, modification and deletion.

use serde_json::{Map, Value, json};

use super::page::{ListQuery, Page, paginate};
use super::store_files::AddFile;
use super::{Access, RetrievalService, check, ids};
use crate::error::{Result, RetrievalError};
use crate::records::{FileStatus, StoreFileRecord, StoreRecord};
use crate::types::CollectionSpec;

/// `POST /v1/vector_stores`, parsed.
#[derive(Debug, Clone, Default)]
pub struct CreateStore {
    pub name: Option<String>,
    pub metadata: Map<String, Value>,
    pub expires_after: Option<Value>,
    pub chunking_strategy: Option<Value>,
    pub file_ids: Vec<String>,
    /// Extension: the embedding model (default: the service's default model).
    pub embedding_model: Option<String>,
    /// The API key creating it (see [`Access`]).
    pub owner: Option<String>,
}

/// `POST /v1/vector_stores/{id}`, parsed: each `Some` replaces the stored value.
#[derive(Debug, Clone, Default)]
pub struct ModifyStore {
    pub name: Option<Option<String>>,
    pub metadata: Option<Map<String, Value>>,
    pub expires_after: Option<Option<Value>>,
}

/// Files of a store (or batch) by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileCounts {
    pub in_progress: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub total: u64,
}

impl FileCounts {
    pub fn of<'a>(files: impl IntoIterator<Item = &'a StoreFileRecord>) -> Self {
        let mut c = Self::default();
        for f in files {
            c.total += 1;
            match f.status {
                FileStatus::InProgress => c.in_progress += 1,
                FileStatus::Completed => c.completed += 1,
                FileStatus::Failed => c.failed += 1,
                FileStatus::Cancelled => c.cancelled += 1,
            }
        }
        c
    }
}

/// A store with what is derived from its files.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreView {
    pub record: StoreRecord,
    pub file_counts: FileCounts,
    pub usage_bytes: u64,
    /// `expired`, `in_progress` or `completed`.
    pub status: &'static str,
    pub expires_at: Option<u64>,
}

fn missing_store(id: &str) -> RetrievalError {
    RetrievalError::Missing {
        what: "VectorStore",
        id: id.to_owned(),
    }
}

fn check_expires_after(value: &Value) -> Result<()> {
    let anchor_ok = value.get("anchor").and_then(Value::as_str) == Some("last_active_at");
    let days = value.get("days").and_then(Value::as_u64);
    if !anchor_ok || !days.is_some_and(|d| (1..=365).contains(&d)) {
        return Err(RetrievalError::InvalidArgument {
            field: "expires_after",
            reason: "must be {\"anchor\": \"last_active_at\", \"days\": 1..=365}".into(),
        });
    }
    Ok(())
}

fn check_name(name: &Option<String>) -> Result<()> {
    if name.as_ref().is_some_and(|n| n.chars().count() > 256) {
        return Err(RetrievalError::InvalidArgument {
            field: "name",
            reason: "is longer than 256 characters".into(),
        });
    }
    Ok(())
}

impl RetrievalService {
    /// Creates a store and its collection, then attaches `file_ids` (ingested in the
    /// background).
    pub async fn create_store(&self, req: CreateStore) -> Result<StoreView> {
        check_name(&req.name)?;
        check::metadata(&req.metadata)?;
        if let Some(e) = &req.expires_after {
            check_expires_after(e)?;
        }
        let model = req
            .embedding_model
            .clone()
            .unwrap_or_else(|| self.0.options.default_model.clone());
        let info = self.0.embed.describe(&model).await?;
        let chunking = check::chunking(
            req.chunking_strategy.as_ref(),
            &json!({"type": "auto"}),
            info.limits,
        )?;
        for file_id in &req.file_ids {
            self.file(file_id).await?;
        }
        let now = ids::now();
        let record = StoreRecord {
            id: ids::new_id("vs_"),
            name: req.name,
            created_at: now,
            last_active_at: now,
            metadata: req.metadata,
            expires_after: req.expires_after,
            model: model.clone(),
            dimension: info.dimension,
            chunking_strategy: chunking,
            owner: req.owner,
        };
        self.0
            .store
            .create_collection(
                &record.id,
                CollectionSpec {
                    model,
                    dimension: info.dimension,
                },
            )
            .await?;
        if let Err(e) = self.0.records.put_store(record.clone()).await {
            let _ = self.0.store.drop_collection(&record.id).await;
            return Err(e);
        }
        for file_id in req.file_ids {
            self.add_file(
                &record.id,
                AddFile {
                    file_id,
                    ..AddFile::default()
                },
                None,
            )
            .await?;
        }
        self.store(&record.id).await
    }

    /// A store's record alone (no counts: cheap).
    pub async fn store_record(&self, id: &str) -> Result<StoreRecord> {
        self.0
            .records
            .get_store(id)
            .await?
            .ok_or_else(|| missing_store(id))
    }

    /// A store with its derived counts.
    pub async fn store(&self, id: &str) -> Result<StoreView> {
        let record = self.store_record(id).await?;
        self.view(record).await
    }

    async fn view(&self, record: StoreRecord) -> Result<StoreView> {
        let files = self.0.records.list_store_files(&record.id).await?;
        let file_counts = FileCounts::of(&files);
        let usage_bytes = files
            .iter()
            .filter(|f| f.status == FileStatus::Completed)
            .map(|f| f.usage_bytes)
            .sum();
        let expires_at = record
            .expires_after
            .as_ref()
            .and_then(|e| e.get("days")?.as_u64())
            .map(|days| record.last_active_at + days * 86_400);
        let status = if expires_at.is_some_and(|at| at <= ids::now()) {
            "expired"
        } else if file_counts.in_progress > 0 {
            "in_progress"
        } else {
            "completed"
        };
        Ok(StoreView {
            record,
            file_counts,
            usage_bytes,
            status,
            expires_at,
        })
    }

    /// The store no API key owns whose id is `name`, else the oldest such store named `name`;
    /// `None` when there is none.
    pub async fn find_shared_store(&self, name: &str) -> Result<Option<String>> {
        let mut stores = self.0.records.list_stores().await?;
        stores.retain(|s| s.owner.is_none());
        if let Some(s) = stores.iter().find(|s| s.id == name) {
            return Ok(Some(s.id.clone()));
        }
        Ok(stores
            .iter()
            .filter(|s| s.name.as_deref() == Some(name))
            .min_by_key(|s| s.created_at)
            .map(|s| s.id.clone()))
    }

    /// The store a source names: [`Self::find_shared_store`], or a new store of that name that
    /// no key owns. Sources starting together make one store, not one each.
    pub async fn shared_store(&self, name: &str) -> Result<String> {
        let _one_at_a_time = self.0.shared_stores.lock().await;
        if let Some(id) = self.find_shared_store(name).await? {
            return Ok(id);
        }
        let view = self
            .create_store(CreateStore {
                name: Some(name.to_owned()),
                ..CreateStore::default()
            })
            .await?;
        Ok(view.record.id)
    }

    /// A page of the stores `access` reads.
    pub async fn list_stores(&self, query: &ListQuery, access: &Access) -> Result<Page<StoreView>> {
        let mut all = self.0.records.list_stores().await?;
        all.retain(|s| access.reads(s.owner.as_deref()));
        let page = paginate(all, |s| (s.created_at, s.id.as_str()), query)?;
        let mut data = Vec::with_capacity(page.data.len());
        for record in page.data {
            data.push(self.view(record).await?);
        }
        Ok(Page {
            data,
            has_more: page.has_more,
        })
    }

    pub async fn modify_store(&self, id: &str, req: ModifyStore) -> Result<StoreView> {
        let _edit = self.0.edit.lock().await;
        let mut record = self.store_record(id).await?;
        if let Some(name) = req.name {
            check_name(&name)?;
            record.name = name;
        }
        if let Some(metadata) = req.metadata {
            check::metadata(&metadata)?;
            record.metadata = metadata;
        }
        if let Some(expires_after) = req.expires_after {
            if let Some(e) = &expires_after {
                check_expires_after(e)?;
            }
            record.expires_after = expires_after;
        }
        record.last_active_at = ids::now();
        self.0.records.put_store(record.clone()).await?;
        drop(_edit);
        self.view(record).await
    }

    /// Deletes a store: its collection, then its records.
    pub async fn delete_store(&self, id: &str) -> Result<()> {
        self.store_record(id).await?;
        match self.0.store.drop_collection(id).await {
            Ok(()) | Err(RetrievalError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let _edit = self.0.edit.lock().await;
        if !self.0.records.delete_store(id).await? {
            return Err(missing_store(id));
        }
        self.0.caches.bump(id);
        self.0.balances.forget(id);
        Ok(())
    }
}
