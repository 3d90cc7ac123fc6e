//! Why a file cannot be ingested. Each variant has a stable code for the file's `last_error`.

/// An ingestion failure of one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The file's type is not one nfai extracts text from.
    #[error("unsupported file type: {0}")]
    UnsupportedType(String),
    /// The file claims a supported type but cannot be read as it (corrupt PDF, bad JSON).
    #[error("cannot read the file as {kind}: {reason}")]
    Unreadable { kind: &'static str, reason: String },
    /// A `chunking_strategy` the embedder or OpenAI's limits refuse; `field` names it.
    #[error("invalid `{field}`: {reason}")]
    InvalidChunking { field: &'static str, reason: String },
    /// The tokenizer failed on the text.
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
}

impl IngestError {
    /// OpenAI's `last_error.code` for a file that failed this way.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedType(_) => "unsupported_file",
            Self::Unreadable { .. } => "invalid_file",
            Self::InvalidChunking { .. } => "invalid_file",
            Self::Tokenizer(_) => "server_error",
        }
    }
}
