//! Gemma 3 text decoder from a GGUF file, computed as llama.cpp computes it, with a ragged
//! batched forward pass (see [`crate::lm`]).
//!
//! Layout of a pass: the new tokens of every entry are packed into one `[total_tokens, hidden]`
//! matrix, so each weight is read once per pass; RoPE uses each token's own position; attention
//! runs per entry over its cache plus its new tokens, with a causal mask and, on sliding-window
//! layers, a window of `attention.sliding_window` positions (in prefill and decode alike); the
//! output head runs only on each entry's last new token.
//!
//! The embedding table stays quantised: lookups dequantise only the rows they need, and the
//! tied output head multiplies by the same quantised tensor.
//!
//! Numerics follow llama.cpp's CPU backend where it rounds on purpose: queries (after scaling),
//! keys and values are rounded to f16 (its f16 KV cache and attention inputs), GELU goes through
//! its f16 table, RMSNorm sums in f64 and the RoPE angles are computed in f32 as ggml computes
//! them. Quantised inference is chaotic (a one-ulp change moves log-probabilities by about 0.1),
//! so this does not make results identical to llama.cpp's; it keeps them as close as another
//! llama.cpp run with a different batch shape would be.
//!
//! A sequence's results do not depend on what else is in its batch: every weight multiplication
//! treats rows independently (see [`crate::layers::QLinear`]) and attention runs per entry.

mod block;
mod config;

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};

pub use config::Gemma3Config;

use crate::gguf::GgufFile;
use crate::kernels::RowOrder;
use crate::layers::{BatchLayout, QLinear, RmsNorm, RopeTable};
use crate::lm::{BatchEntry, CausalLm, LmInfo, SeqKvCache};
use crate::{ModelError, Result};
use block::Block;

/// A loaded Gemma 3 model; immutable and shared between threads.
#[derive(Debug)]
pub struct Gemma3 {
    cfg: Gemma3Config,
    info: LmInfo,
    embed: Arc<QTensor>,
    embed_scale: f64,
    blocks: Vec<Block>,
    output_norm: RmsNorm,
    lm_head: QLinear,
    device: Device,
}

impl Gemma3 {
    /// Loads the weights of `g` onto `device` for contexts of up to `context_length` positions
    /// (capped by the model's own context length).
    pub fn load(g: &GgufFile, device: &Device, context_length: usize) -> Result<Self> {
        let arch = g.architecture()?;
        if arch != "gemma3" {
            return Err(ModelError::Unsupported(format!(
                "architecture `{arch}` is not gemma3"
            )));
        }
        if context_length == 0 {
            return Err(ModelError::Input("context length must be positive".into()));
        }
        let cfg = Gemma3Config::from_gguf(g)?;
        let context_length = context_length.min(cfg.model_context.max(1));

        let embed = Arc::new(g.tensor("token_embd.weight", device)?);
        let (vocab_size, hidden) = embed.shape().dims2()?;
        if hidden != cfg.hidden {
            return Err(ModelError::Format(format!(
                "token_embd.weight is {hidden} wide, embedding_length is {}",
                cfg.hidden
            )));
        }
        let lm_head = if g.has_tensor("output.weight") {
            QLinear::load(g, "output.weight", device)?
        } else {
            QLinear::from_arc(embed.clone())?
        };

        let rope_global = RopeTable::new(
            cfg.rope_base_global,
            cfg.rope_scale_global,
            cfg.head_dim,
            context_length,
            device,
        )?;
        let same_tables = cfg.rope_base_local == cfg.rope_base_global
            && (cfg.rope_scale_global - 1.0).abs() < f32::EPSILON;
        let rope_local = if same_tables || !cfg.local_layers.iter().any(|l| *l) {
            rope_global.clone()
        } else {
            RopeTable::new(
                cfg.rope_base_local,
                1.0,
                cfg.head_dim,
                context_length,
                device,
            )?
        };
        let blocks = (0..cfg.layers)
            .map(|i| {
                let local = cfg.local_layers.get(i).copied().unwrap_or(false);
                let rope = if local {
                    rope_local.clone()
                } else {
                    rope_global.clone()
                };
                Block::load(g, &cfg, i, rope, device)
            })
            .collect::<Result<Vec<_>>>()?;
        let output_norm = RmsNorm::load(g, "output_norm.weight", device, cfg.eps)?;

        let info = LmInfo {
            architecture: arch.to_string(),
            context_length,
            vocab_size,
            eos_token_ids: model_eos_ids(g)?,
            kv_bytes_per_token: cfg.layers
                * cfg.kv_heads
                * cfg.head_dim
                * 2
                * crate::lm::kv_dtype(device).size_in_bytes(),
        };
        Ok(Self {
            embed_scale: (cfg.hidden as f64).sqrt(),
            cfg,
            info,
            embed,
            blocks,
            output_norm,
            lm_head,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &Gemma3Config {
        &self.cfg
    }
}

/// End-of-generation ids from the tokenizer metadata; none when the file has no vocabulary.
pub(crate) fn model_eos_ids(g: &GgufFile) -> Result<Vec<u32>> {
    if g.get("tokenizer.ggml.tokens").is_none() {
        return Ok(g
            .opt_u32("tokenizer.ggml.eos_token_id")?
            .into_iter()
            .collect());
    }
    crate::tokenizer::gguf::eos_token_ids(g)
}

impl CausalLm for Gemma3 {
    fn info(&self) -> &LmInfo {
        &self.info
    }

    fn new_cache(&self) -> SeqKvCache {
        SeqKvCache::with_windows(
            self.cfg
                .local_layers
                .iter()
                .map(|&local| if local { self.cfg.sliding_window } else { None })
                .collect(),
        )
    }

    fn forward(&self, entries: &mut [BatchEntry<'_>]) -> Result<Tensor> {
        let layout = BatchLayout::new(
            entries,
            self.info.vocab_size,
            self.info.context_length,
            self.cfg.layers,
        )?;
        let dev = &self.device;
        let ids = Tensor::new(layout.token_ids.as_slice(), dev)?;
        let positions = Tensor::new(layout.positions.as_slice(), dev)?;
        let mut x = (self.embed.embedding(&ids)?.to_dtype(DType::F32)? * self.embed_scale)?;

        // Each entry's rows take the K-quant float order llama.cpp gives a chunk of its length.
        let orders: Vec<RowOrder> = layout
            .spans
            .iter()
            .flat_map(|s| RowOrder::chunk(s.len))
            .collect();
        // RoPE rows are gathered once per distinct table, not once per layer.
        let mut rows: Vec<(Arc<RopeTable>, Tensor, Tensor)> = Vec::with_capacity(2);
        for block in &self.blocks {
            let idx = match rows
                .iter()
                .position(|(t, _, _)| Arc::ptr_eq(t, &block.rope))
            {
                Some(i) => i,
                None => {
                    let (cos, sin) = block.rope.rows(&positions)?;
                    rows.push((block.rope.clone(), cos, sin));
                    rows.len() - 1
                }
            };
            let (_, cos, sin) = &rows[idx];
            x = block.forward(&x, &layout, entries, (cos, sin), &orders)?;
        }
        for (entry, span) in entries.iter_mut().zip(&layout.spans) {
            entry.cache.commit(span.len);
        }

        let last = x.index_select(&layout.last_rows(dev)?, 0)?;
        let logits = self.lm_head.forward(&self.output_norm.forward(&last)?)?;
        let logits = match self.cfg.final_logit_softcap {
            Some(cap) => ((logits / f64::from(cap))?.tanh()? * f64::from(cap))?,
            None => logits,
        };
        Ok(logits.to_dtype(DType::F32)?)
    }
}

#[cfg(test)]
pub(crate) mod fixture_tests;
#[cfg(test)]
pub(crate) mod real_tests;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;
