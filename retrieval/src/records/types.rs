//! The records the retrieval service keeps: uploaded files, vector stores, the files attached
//! to a store (each one an ingestion job while `in_progress`) and file batches.
//!
//! Records hold what was asked and what happened; derived numbers (a store's `file_counts`,
//! `usage_bytes` and status, a batch's counts) are computed from the store files.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An uploaded file; its bytes live in the blob directory under the same id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub id: String,
    pub bytes: u64,
    pub created_at: u64,
    pub filename: String,
    pub purpose: String,
    /// The content type the upload declared, if any.
    pub content_type: Option<String>,
    /// The API key that uploaded it; `None` for the admin token, the server's own sources and
    /// a server without keys (see [`crate::service::Access`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A vector store, pinned to the embedding model its collection was created with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreRecord {
    pub id: String,
    pub name: Option<String>,
    pub created_at: u64,
    pub last_active_at: u64,
    /// Up to 16 string pairs.
    pub metadata: Map<String, Value>,
    /// `{anchor: "last_active_at", days}` as given, if any.
    pub expires_after: Option<Value>,
    /// The embedding model every chunk of this store was embedded with.
    pub model: String,
    pub dimension: usize,
    /// The store's default `chunking_strategy` for files added without one.
    pub chunking_strategy: Value,
    /// The API key that created it; `None` for the admin token, the server's own sources and
    /// a server without keys (see [`crate::service::Access`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// Where a store file's ingestion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    InProgress,
    Completed,
    Failed,
    Cancelled,
}

impl FileStatus {
    /// The name OpenAI uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses OpenAI's name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "in_progress" => Some(Self::InProgress),
            "completed" => Some(Self::Completed),
            "failed" => Some(Self::Failed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// Why a store file failed: OpenAI's `last_error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    pub code: String,
    pub message: String,
}

/// A file attached to a vector store. While `in_progress` it is a pending ingestion job, so a
/// restart resumes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreFileRecord {
    pub store_id: String,
    pub file_id: String,
    pub created_at: u64,
    pub status: FileStatus,
    pub last_error: Option<LastError>,
    /// Bytes of chunk text stored for this file.
    pub usage_bytes: u64,
    /// Chunks stored for this file.
    pub chunks: u64,
    /// Up to 16 attributes: strings, numbers or booleans.
    pub attributes: Map<String, Value>,
    /// The `chunking_strategy` in OpenAI's JSON form (`auto` resolved to its window).
    pub chunking_strategy: Value,
    /// The batch that added it, if any.
    pub batch_id: Option<String>,
    /// Bumped on every (re)submission; an ingestion run only records its outcome while the
    /// revision it started from is still current.
    #[serde(default)]
    pub revision: u64,
}

/// A batch of files added to a store together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub id: String,
    pub store_id: String,
    pub created_at: u64,
    pub file_ids: Vec<String>,
    pub cancelled: bool,
}
