//! The retrieval crate's error kinds: each variant is one outcome the router maps to a status.
//!
//! Client mistakes (a bad filter, a model that does not match the store, a bad vector) are
//! distinct from faults of the store itself (unavailable, timeout, storage full or I/O), so the
//! router can answer 4xx or 503 without inspecting messages.

use std::fmt;

/// Result alias for vector-store calls.
pub type Result<T, E = RetrievalError> = std::result::Result<T, E>;

/// Everything a vector-store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RetrievalError {
    /// The named collection does not exist.
    #[error("vector store collection `{0}` not found")]
    NotFound(String),
    /// A collection with this name already exists.
    #[error("vector store collection `{0}` already exists")]
    AlreadyExists(String),
    /// A collection name that cannot be stored (empty, too long or with other characters).
    #[error("invalid collection name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// A filter that cannot be run; `attribute` names the attribute (or filter path) at fault.
    #[error("invalid filter on `{attribute}`: {reason}")]
    InvalidFilter { attribute: String, reason: String },
    /// A chunk's attribute whose value type differs from the type the store already indexed.
    #[error("attribute `{attribute}` is {expected} in this store, got {got}")]
    AttributeType {
        attribute: String,
        expected: AttributeKind,
        got: AttributeKind,
    },
    /// A vector of the wrong dimension or with a non-finite component.
    #[error("invalid vector: {0}")]
    InvalidVector(String),
    /// A request argument out of range (limit, score threshold, model id).
    #[error("invalid `{field}`: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// The collection was built with another embedding model; re-embedding is an admin action.
    #[error(
        "collection `{collection}` holds `{stored}` embeddings; a `{requested}` query cannot search it"
    )]
    ModelMismatch {
        collection: String,
        stored: String,
        requested: String,
    },
    /// The store cannot answer now (server down, engine fault, busy); the cause is kept.
    #[error("vector store unavailable: {0}")]
    Unavailable(String),
    /// The store did not answer within the deadline.
    #[error("vector store timed out: {0}")]
    Timeout(String),
    /// The disk is full or a file operation failed; data already stored is kept.
    #[error("vector store storage error: {0}")]
    Storage(String),
    /// A record (uploaded file, vector store, store file, batch) that does not exist;
    /// `what` names its kind as OpenAI does (`File`, `VectorStore`, …).
    #[error("No such {what}: `{id}`")]
    Missing { what: &'static str, id: String },
}

impl RetrievalError {
    /// A stable code for logs and metrics, one per variant.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::AlreadyExists(_) => "already_exists",
            Self::InvalidName { .. } => "invalid_name",
            Self::InvalidFilter { .. } => "invalid_filter",
            Self::AttributeType { .. } => "attribute_type",
            Self::InvalidVector(_) => "invalid_vector",
            Self::InvalidArgument { .. } => "invalid_argument",
            Self::ModelMismatch { .. } => "model_mismatch",
            Self::Unavailable(_) => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Storage(_) => "storage",
            Self::Missing { .. } => "not_found",
        }
    }

    pub(crate) fn filter(attribute: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidFilter {
            attribute: attribute.into(),
            reason: reason.into(),
        }
    }
}

/// The type of an attribute value, as the attribute registry records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeKind {
    String,
    Number,
    Bool,
}

impl fmt::Display for AttributeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::String => "a string",
            Self::Number => "a number",
            Self::Bool => "a boolean",
        })
    }
}
