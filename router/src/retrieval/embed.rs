//! [`NativeEmbed`]: the retrieval service's [`Embed`] over nfai's own embedding models. Texts
//! go through the native backend (tokenized off the async workers, batched by the embedding
//! engine); a full engine queue is `Unavailable`, which ingestion waits out.
//!
//! Token offsets for chunking come from the model's own tokenizer, word by word: each
//! whitespace-separated word (long ones cut into 64-byte pieces) counts as the tokens the
//! model makes of it, so chunk boundaries fall between words and the counts are the model's.
//! A few tokens are kept in reserve ([`RESERVE_TOKENS`]) because a word inside a text may
//! tokenize slightly differently than alone.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use nfai_models::{InputKind, TextEmbedder};
use nfai_retrieval::RetrievalError;
use nfai_retrieval::ingest::EmbedderLimits;
use nfai_retrieval::service::{Embed, EmbedderInfo, TextKind};

use crate::backend::Backend;

/// The tenant that passage embeddings (indexing) are accounted to in the engine's queue; no key
/// id has this form.
const INDEXING_TENANT: &str = "~indexing";
use crate::backend::error::BackendError;
use crate::backend::native::NativeBackend;
use crate::validate::{EmbeddingRequest, Prompt};

/// Tokens of each passage's window left unused, for words that tokenize differently in context.
pub const RESERVE_TOKENS: usize = 8;
/// Longest piece of a word counted at once.
const PIECE_BYTES: usize = 64;

/// Embeddings from the native engines.
#[derive(Debug, Clone)]
pub struct NativeEmbed {
    native: Arc<NativeBackend>,
}

impl NativeEmbed {
    pub fn new(native: Arc<NativeBackend>) -> Self {
        Self { native }
    }

    async fn embedder(&self, model: &str) -> Result<Arc<dyn TextEmbedder>, RetrievalError> {
        let lease = self
            .native
            .registry()
            .embedding(model, None)
            .await
            .map_err(|e| to_retrieval(model, e))?;
        Ok(Arc::clone(&lease.embedder))
    }
}

fn to_retrieval(model: &str, e: BackendError) -> RetrievalError {
    match e {
        BackendError::ModelNotFound(_) | BackendError::NotServed(_) => {
            RetrievalError::InvalidArgument {
                field: "embedding_model",
                reason: format!("`{model}` is not a served model"),
            }
        }
        BackendError::Field(f) if f.param == "model" => RetrievalError::InvalidArgument {
            field: "embedding_model",
            reason: f.message,
        },
        BackendError::Field(f) => RetrievalError::InvalidArgument {
            field: "input",
            reason: f.message,
        },
        BackendError::DeadlineExceeded => RetrievalError::Timeout(e.to_string()),
        other => RetrievalError::Unavailable(other.to_string()),
    }
}

/// Tokens of `kind`'s framing (specials and prefix) around an empty text.
fn framing(embedder: &dyn TextEmbedder, kind: InputKind) -> Result<usize, RetrievalError> {
    embedder
        .tokenize("", kind)
        .map(|ids| ids.len())
        .map_err(|e| RetrievalError::Unavailable(format!("tokenizer failed: {e}")))
}

/// Splits a word into pieces of at most [`PIECE_BYTES`] bytes at character boundaries.
fn pieces(word: &str, start: usize, out: &mut Vec<Range<usize>>) {
    let mut from = 0;
    while from < word.len() {
        let mut to = (from + PIECE_BYTES).min(word.len());
        while !word.is_char_boundary(to) {
            to -= 1;
        }
        if to == from {
            to = word[from..]
                .char_indices()
                .nth(1)
                .map_or(word.len(), |(i, _)| from + i);
        }
        out.push(start + from..start + to);
        from = to;
    }
}

/// Byte ranges of the tokens of `text`, by `embedder`, word by word (see the module docs).
pub fn word_token_offsets(
    embedder: &dyn TextEmbedder,
    text: &str,
) -> Result<Vec<Range<usize>>, RetrievalError> {
    let frame = framing(embedder, InputKind::Passage)?;
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                pieces(&text[s..i], s, &mut words);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        pieces(&text[s..], s, &mut words);
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(words.len() * 2);
    for range in words {
        let word = &text[range.clone()];
        let n = match counts.get(word) {
            Some(n) => *n,
            None => {
                let ids = embedder
                    .tokenize(word, InputKind::Passage)
                    .map_err(|e| RetrievalError::Unavailable(format!("tokenizer failed: {e}")))?;
                let n = ids.len().saturating_sub(frame).max(1);
                counts.insert(word, n);
                n
            }
        };
        out.extend(std::iter::repeat_n(range, n));
    }
    Ok(out)
}

impl Embed for NativeEmbed {
    fn describe<'a>(
        &'a self,
        model: &'a str,
    ) -> BoxFuture<'a, Result<EmbedderInfo, RetrievalError>> {
        async move {
            let embedder = self.embedder(model).await?;
            let frame = framing(embedder.as_ref(), InputKind::Passage)?;
            Ok(EmbedderInfo {
                dimension: embedder.dim(),
                limits: EmbedderLimits::from_positions(
                    embedder.max_tokens(),
                    0,
                    frame + RESERVE_TOKENS,
                ),
            })
        }
        .boxed()
    }

    fn token_offsets<'a>(
        &'a self,
        model: &'a str,
        text: Arc<str>,
    ) -> BoxFuture<'a, Result<Vec<Range<usize>>, RetrievalError>> {
        async move {
            let embedder = self.embedder(model).await?;
            tokio::task::spawn_blocking(move || word_token_offsets(embedder.as_ref(), &text))
                .await
                .map_err(|e| RetrievalError::Unavailable(format!("tokenizer task failed: {e}")))?
        }
        .boxed()
    }

    fn embed<'a>(
        &'a self,
        model: &'a str,
        texts: Vec<String>,
        kind: TextKind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, RetrievalError>> {
        async move {
            let req = EmbeddingRequest {
                inputs: texts.into_iter().map(Prompt::Text).collect(),
                dimensions: None,
                input_kind: match kind {
                    TextKind::Query => InputKind::Query,
                    TextKind::Passage => InputKind::Passage,
                },
                keep_alive: None,
                deadline: None,
            };
            let embedded = self.native.embed(model, req);
            let out = match kind {
                // Indexing is bulk work: it takes turns with the interactive requests in the
                // engine's queue instead of holding them back.
                TextKind::Passage => {
                    crate::context::as_tenant(Some(INDEXING_TENANT.into()), embedded).await
                }
                TextKind::Query => embedded.await,
            };
            out.map(|out| out.vectors)
                .map_err(|e| to_retrieval(model, e))
        }
        .boxed()
    }
}
