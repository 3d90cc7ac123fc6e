//! [`Embed`]: what the retrieval service needs from an embedding model. The router implements
//! it over its embedding engine (batched, tokenized off the async workers); tests may use any
//! real embedder.

use std::ops::Range;

use futures::future::BoxFuture;

use crate::error::Result;
use crate::ingest::EmbedderLimits;

/// Whether a text is a search query or a stored passage (e5 embeds them with different
/// prefixes; other models alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextKind {
    Query,
    Passage,
}

/// What the service must know of a model before it creates a store pinned to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedderInfo {
    pub dimension: usize,
    /// Tokens of text one passage may hold (after specials and the `passage: ` prefix).
    pub limits: EmbedderLimits,
}

/// An embedding model provider.
pub trait Embed: Send + Sync + std::fmt::Debug + 'static {
    /// The model's dimension and limits; an unknown or non-embedding model is
    /// [`RetrievalError::InvalidArgument`](crate::RetrievalError::InvalidArgument) on `model`.
    fn describe<'a>(&'a self, model: &'a str) -> BoxFuture<'a, Result<EmbedderInfo>>;

    /// The byte range of every token of `text` by the model's tokenizer, in order, computed
    /// off the async workers. Ranges may repeat (several tokens of one word).
    fn token_offsets<'a>(
        &'a self,
        model: &'a str,
        text: std::sync::Arc<str>,
    ) -> BoxFuture<'a, Result<Vec<Range<usize>>>>;

    /// Unit-length embeddings of `texts` (each within the model's limit), in order. A busy
    /// engine is [`RetrievalError::Unavailable`](crate::RetrievalError::Unavailable).
    fn embed<'a>(
        &'a self,
        model: &'a str,
        texts: Vec<String>,
        kind: TextKind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>>>;
}
