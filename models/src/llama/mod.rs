//! Llama-shaped text decoders from GGUF files (Llama 2/3.x, Mistral, SmolLM2, Qwen 2/2.5,
//! Qwen 3; see [`Family`]), computed as llama.cpp computes them, with the ragged batched
//! forward pass of [`crate::lm`].
//!
//! Layout of a pass, as for [`crate::gemma3`]: the new tokens of every entry are packed into one
//! `[total_tokens, hidden]` matrix so that each weight is read once per pass; RoPE uses each
//! token's own position (one table for every layer, with Llama 3's per-frequency factors from
//! `rope_freqs.weight` and linear position scaling where the file asks for them); attention
//! runs per entry over its cache plus its new tokens with grouped KV heads; the output head
//! runs only on each entry's last new token and shares the token embedding when the file has
//! no `output.weight`.
//!
//! Numerics follow llama.cpp's CPU backend where it rounds on purpose (f16 KV cache, f16
//! queries in short-chunk attention, RMSNorm with an f64 sum, ggml's RoPE and SwiGLU), so that
//! greedy decoding follows llama.cpp's tokens. A sequence's results do not depend on what else
//! is in its batch.

mod block;
mod config;
mod family;

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};

pub use config::LlamaConfig;
pub use family::Family;

use crate::gguf::GgufFile;
use crate::kernels::RowOrder;
use crate::layers::{BatchLayout, QLinear, RmsNorm, RopeTable};
use crate::lm::{BatchEntry, CausalLm, LmInfo, SeqKvCache};
use crate::{ModelError, Result};
use block::Block;

/// A loaded Llama-family model; immutable and shared between threads.
#[derive(Debug)]
pub struct Llama {
    cfg: LlamaConfig,
    info: LmInfo,
    embed: Arc<QTensor>,
    blocks: Vec<Block>,
    rope: Arc<RopeTable>,
    output_norm: RmsNorm,
    lm_head: QLinear,
    device: Device,
}

impl Llama {
    /// Loads the weights of `g` onto `device` for contexts of up to `context_length` positions
    /// (capped by the model's own context length).
    pub fn load(g: &GgufFile, device: &Device, context_length: usize) -> Result<Self> {
        if context_length == 0 {
            return Err(ModelError::Input("context length must be positive".into()));
        }
        let cfg = LlamaConfig::from_gguf(g)?;
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
        let factors = if g.has_tensor("rope_freqs.weight") {
            let t = g.tensor("rope_freqs.weight", device)?.dequantize(device)?;
            Some(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
        } else {
            None
        };
        let rope = RopeTable::with_factors(
            cfg.rope_base,
            cfg.rope_scale,
            factors.as_deref(),
            cfg.head_dim,
            context_length,
            device,
        )?;
        let blocks = (0..cfg.layers)
            .map(|i| Block::load(g, &cfg, i, device))
            .collect::<Result<Vec<_>>>()?;
        let output_norm = RmsNorm::load(g, "output_norm.weight", device, cfg.eps)?;

        let info = LmInfo {
            architecture: cfg.family.architecture().to_string(),
            context_length,
            vocab_size,
            eos_token_ids: crate::gemma3::model_eos_ids(g)?,
            kv_bytes_per_token: cfg.layers
                * cfg.kv_heads
                * cfg.head_dim
                * 2
                * crate::lm::kv_dtype(device).size_in_bytes(),
        };
        Ok(Self {
            cfg,
            info,
            embed,
            blocks,
            rope,
            output_norm,
            lm_head,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }
}

impl CausalLm for Llama {
    fn info(&self) -> &LmInfo {
        &self.info
    }

    fn new_cache(&self) -> SeqKvCache {
        SeqKvCache::new(self.cfg.layers)
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
        let mut x = self.embed.embedding(&ids)?.to_dtype(DType::F32)?;
        // Each entry's rows take the K-quant float order llama.cpp gives a chunk of its length.
        let orders: Vec<RowOrder> = layout
            .spans
            .iter()
            .flat_map(|s| RowOrder::chunk(s.len))
            .collect();
        let (cos, sin) = self.rope.rows(&positions)?;
        for block in &self.blocks {
            x = block.forward(&x, &layout, entries, (&cos, &sin), &orders)?;
        }
        for (entry, span) in entries.iter_mut().zip(&layout.spans) {
            entry.cache.commit(span.len);
        }
        let last = x.index_select(&layout.last_rows(dev)?, 0)?;
        let logits = self.lm_head.forward(&self.output_norm.forward(&last)?)?;
        Ok(logits.to_dtype(DType::F32)?)
    }
}

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod real_tests;
#[cfg(test)]
mod tests;
