//! From an uploaded file to chunks ready to embed.
//!
//! - `extract`: the file's text by type (text, Markdown, HTML, JSON, CSV, PDF), or an
//!   [`IngestError`] that marks the file `failed` without stopping other files.
//! - `normalize`: Unicode NFC, so that NFC and NFD input (common with Vietnamese) embed alike.
//! - `language`: a chunk's language, kept with it for language-balanced search.
//! - `chunk`: token windows as OpenAI's `chunking_strategy` defines them, sized to the
//!   embedder, over any tokenizer given as a [`Tokenize`] implementation or closure.

mod chunk;
mod error;
mod extract;
mod language;
mod normalize;

pub use chunk::{ChunkingStrategy, EmbedderLimits, TextChunk, Tokenize, chunk_text};
pub use error::IngestError;
pub use extract::{FileKind, extract_text};
pub use language::detect_language;
pub use normalize::normalize_text;
