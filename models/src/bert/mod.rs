//! BERT sentence embeddings (sentence-transformers layout, e.g. all-MiniLM-L6-v2): loading a
//! model folder, tokenizing with `[CLS]`/`[SEP]` framing and truncation, validating token ids
//! that clients send, and running the batched encoder with pooling and L2 normalisation.
//!
//! A model folder holds `config.json` (a Hugging Face `BertModel` config), `model.safetensors`
//! (tensor names with or without a `bert.` prefix), `tokenizer.json`, and optionally
//! `1_Pooling/config.json` (default: mean pooling) and `sentence_bert_config.json`
//! (`max_seq_length`).

mod attention;
#[cfg(target_arch = "x86_64")]
mod attention_blocked;
#[cfg(target_arch = "x86_64")]
mod bf16;
mod config;
mod cpu;
mod encoder;
#[cfg(target_arch = "x86_64")]
mod f32_avx2;
#[cfg(target_arch = "x86_64")]
mod f32_avx512;
#[cfg(all(test, target_arch = "x86_64"))]
mod gemm_check;
mod linear;
pub(crate) mod math;
#[cfg(target_arch = "x86_64")]
mod q4_avx2;
#[cfg(target_arch = "x86_64")]
mod q4_avx512;
#[cfg(test)]
mod tests;

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::{ModelError, Result, TextTokenizer};
pub(crate) use attention::{Span, attention};
pub use config::{BertConfig, Pooling};
pub(crate) use encoder::Activation;
pub(crate) use linear::DenseLinear;

/// Whether encoders' linear layers run in bf16 on this CPU (see `bf16::enabled`).
pub(crate) fn bf16_gemm() -> bool {
    #[cfg(target_arch = "x86_64")]
    return bf16::enabled();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether f32 encoder weights may be held in reduced precision: bf16 on CPUs with AVX-512
/// BF16 (`bf16.rs`), else 8 bits under nfai's AVX-512 kernels (`linear.rs`). `NFAI_EMBED_BF16=0`
/// keeps them in f32.
#[cfg(target_arch = "x86_64")]
pub(crate) fn reduced_allowed() -> bool {
    static ALLOWED: std::sync::LazyLock<bool> =
        std::sync::LazyLock::new(|| std::env::var("NFAI_EMBED_BF16").ok().as_deref() != Some("0"));
    *ALLOWED
}

/// Whether encoders multiply 4-bit weights with 8-bit activations in register tiles on this
/// CPU (AVX2 and FMA; see `q4_avx2.rs`): multilingual-e5's layers do, for passes of many
/// tokens.
pub(crate) fn q4_gemm() -> bool {
    #[cfg(target_arch = "x86_64")]
    return f32_avx2::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

use config::{SentenceBertFile, read_json};
use cpu::CpuEncoder;
use encoder::Encoder;

/// Padded tokens (`sequences * longest sequence`) one forward pass may take; larger batches are
/// split into several passes, which bounds the memory of the attention scores.
const MAX_PADDED_TOKENS_PER_PASS: usize = 8192;

/// The GEMM the packed CPU encoder uses on this CPU: `bf16-avx512` where AVX-512 BF16 is
/// there and allowed (see `bf16.rs`), `int8-avx512-vnni-tiles` under nfai's other AVX-512
/// kernels where reduced precision is allowed (see `linear.rs`), `f32-avx2-strips` under
/// nfai's AVX2 kernels (see `f32_avx2.rs`), else the `gemm` crate's f32 kernels of
/// [`crate::kernels::f32_gemm_isa`].
pub fn cpu_gemm() -> &'static str {
    if bf16_gemm() {
        return "bf16-avx512";
    }
    #[cfg(target_arch = "x86_64")]
    if q4_avx512::enabled() && reduced_allowed() {
        return "int8-avx512-vnni-tiles";
    }
    #[cfg(target_arch = "x86_64")]
    if f32_avx2::enabled() {
        return "f32-avx2-strips";
    }
    crate::kernels::f32_gemm_isa()
}

/// How a model computes, chosen at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compute {
    /// Candle's operations on padded batches: every device but the CPU.
    Candle,
    /// The packed CPU encoder; `bf16` holds its GEMMs' weights in reduced precision: bf16
    /// where the CPU has AVX-512 BF16 (see `bf16.rs`), else 8 bits under nfai's AVX-512
    /// kernels (see `linear.rs`).
    Packed { bf16: bool },
}

/// The network of a loaded model: packed on the CPU, candle's operations elsewhere.
enum Net {
    Cpu(CpuEncoder),
    Candle(Encoder),
}

/// A loaded BERT sentence-embedding model. Immutable once loaded; share it between threads.
pub struct BertEmbedder {
    config: BertConfig,
    net: Net,
    tokenizer: TextTokenizer,
    cls_id: u32,
    sep_id: u32,
    pooling: Pooling,
    max_tokens: usize,
    weights_bytes: usize,
}

impl std::fmt::Debug for BertEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertEmbedder")
            .field("dim", &self.dim())
            .field("layers", &self.config.num_hidden_layers)
            .field("pooling", &self.pooling)
            .field("max_tokens", &self.max_tokens)
            .field("weights_bytes", &self.weights_bytes)
            .finish()
    }
}

impl BertEmbedder {
    /// Loads the model folder `dir` (see the module docs) onto `device`, in F32.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let compute = if device.is_cpu() {
            Compute::Packed { bf16: true }
        } else {
            Compute::Candle
        };
        Self::load_as(dir, device, compute)
    }

    /// [`Self::load`] computing as `compute` says (off the CPU, always candle's operations).
    fn load_as(dir: &Path, device: &Device, compute: Compute) -> Result<Self> {
        let config: BertConfig = read_json(&dir.join("config.json"))?;
        config.validate()?;
        let pooling = Pooling::from_dir(dir)?;

        let st_path = dir.join("sentence_bert_config.json");
        let st_max = if st_path.exists() {
            read_json::<SentenceBertFile>(&st_path)?.max_seq_length
        } else {
            None
        };
        let max_tokens = st_max.map_or(config.max_position_embeddings, |m| {
            m.min(config.max_position_embeddings)
        });
        if max_tokens < 2 {
            return Err(ModelError::Format(format!(
                "{}: max_seq_length {max_tokens} leaves no room for [CLS] and [SEP]",
                st_path.display()
            )));
        }

        let tok_path = dir.join("tokenizer.json");
        let mut inner = tokenizers::Tokenizer::from_file(&tok_path)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", tok_path.display())))?;
        // `tokenize` frames and truncates by itself, and `embed` pads per batch.
        inner
            .with_truncation(None)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        inner.with_padding(None);
        let tokenizer = TextTokenizer::new(inner, None, Vec::new());
        let special = |token: &str| {
            tokenizer
                .token_to_id(token)
                .filter(|&id| (id as usize) < config.vocab_size)
                .ok_or_else(|| {
                    ModelError::Tokenizer(format!(
                        "{}: no {token} token within the model's vocabulary",
                        tok_path.display()
                    ))
                })
        };
        let (cls_id, sep_id) = (special("[CLS]")?, special("[SEP]")?);

        let weights = dir.join("model.safetensors");
        if !weights.exists() {
            return Err(ModelError::io(
                &weights,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        // SAFETY: the file is memory-mapped read-only; it must not be modified while mapped.
        // The mapping lives only inside `vb`, and every tensor is copied out of it into its own
        // storage by `VarBuilder::get` before `vb` is dropped at the end of this function.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device)? };
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let encoder = Encoder::load(&vb, &config, pooling, device)?;
        let (net, weights_bytes) =
            if let (true, Compute::Packed { bf16 }) = (device.is_cpu(), compute) {
                let cpu = CpuEncoder::new(&encoder, bf16)?;
                let bytes = cpu.bytes();
                (Net::Cpu(cpu), bytes)
            } else {
                let bytes = encoder.bytes();
                (Net::Candle(encoder), bytes)
            };
        let this = Self {
            config,
            net,
            tokenizer,
            cls_id,
            sep_id,
            pooling,
            max_tokens,
            weights_bytes,
        };
        tracing::debug!(
            dir = %dir.display(),
            dim = this.config.hidden_size,
            layers = this.config.num_hidden_layers,
            ?pooling,
            max_tokens,
            weights_bytes,
            gemm = this.gemm(),
            "loaded BERT embedder"
        );
        Ok(this)
    }

    /// The tokenizer, with the file's own padding and truncation switched off.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The longest token sequence (including `[CLS]` and `[SEP]`) one input may have.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Dimensions of an embedding.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// Ids accepted by [`Self::embed`] are below this.
    pub fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    /// The GEMM this model runs: [`cpu_gemm`]'s answer when it holds reduced-precision weights, else
    /// `f32` on the CPU and `candle` elsewhere.
    pub fn gemm(&self) -> &'static str {
        match &self.net {
            Net::Cpu(cpu) if cpu.reduced() => cpu_gemm(),
            Net::Cpu(_) => "f32",
            Net::Candle(_) => "candle",
        }
    }

    /// Bytes of weights held on the device.
    pub fn weights_bytes(&self) -> usize {
        self.weights_bytes
    }

    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Token ids of `text` framed as `[CLS] … [SEP]`, keeping the first `max_tokens() - 2`
    /// text tokens when it is longer.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let body = self.tokenizer.encode(text, false)?;
        let keep = body.len().min(self.max_tokens - 2);
        let mut ids = Vec::with_capacity(keep + 2);
        ids.push(self.cls_id);
        ids.extend_from_slice(&body[..keep]);
        ids.push(self.sep_id);
        Ok(ids)
    }

    /// Checks one input's token ids; `index` names it in the error.
    pub fn validate(&self, index: usize, ids: &[u32]) -> Result<()> {
        crate::embedder::validate_ids(index, ids, self.max_tokens, self.config.vocab_size)
    }

    /// Unit-length embeddings of token sequences, in input order. The ids are used as given
    /// (see [`Self::tokenize`] for framing text); each sequence must hold 1..=`max_tokens()`
    /// ids below `vocab_size()`, else the whole call fails with [`ModelError::Input`].
    ///
    /// Sequences are grouped by length into passes (packed without padding on the CPU, padded
    /// elsewhere); neither changes results.
    pub fn embed(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        self.embed_in_passes(batch, MAX_PADDED_TOKENS_PER_PASS)
    }

    /// [`Self::embed`] with passes of at most `max_padded_tokens` padded tokens (a sequence
    /// longer than that still gets a pass of its own).
    fn embed_in_passes(
        &self,
        batch: &[Vec<u32>],
        max_padded_tokens: usize,
    ) -> Result<Vec<Vec<f32>>> {
        for (index, ids) in batch.iter().enumerate() {
            self.validate(index, ids)?;
        }
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by_key(|&i| batch[i].len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); batch.len()];
        let mut start = 0;
        while start < order.len() {
            // Sorted by length, so the last sequence taken sets the padded length.
            let mut end = start + 1;
            while end < order.len()
                && (end + 1 - start) * batch[order[end]].len() <= max_padded_tokens
            {
                end += 1;
            }
            let group = &order[start..end];
            let seqs: Vec<&[u32]> = group.iter().map(|&i| batch[i].as_slice()).collect();
            let vectors = match &self.net {
                Net::Cpu(cpu) => cpu.embed(&seqs),
                Net::Candle(encoder) => encoder.embed(&seqs)?,
            };
            if vectors.len() != group.len() {
                return Err(ModelError::Format(format!(
                    "encoder returned {} vectors for {} inputs",
                    vectors.len(),
                    group.len()
                )));
            }
            for (&i, v) in group.iter().zip(vectors) {
                out[i] = v;
            }
            start = end;
        }
        Ok(out)
    }

    /// Tokenizes and embeds each text.
    pub fn embed_texts<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let batch = texts
            .iter()
            .map(|t| self.tokenize(t.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        self.embed(&batch)
    }
}
