//! One Gemma 3 decoder layer over packed ragged-batch activations: sandwich-normed attention
//! (per-head q/k RMSNorm, NeoX RoPE, optional sliding window, grouped KV heads) and a
//! GELU-tanh gated MLP.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::config::Gemma3Config;
use crate::Result;
use crate::gguf::GgufFile;
use crate::kernels::RowOrder;
use crate::layers::{
    BatchLayout, GGML_FA_TILE_Q, QLinear, RmsNorm, RopeTable, apply_rope, attention, forward_many,
    gelu_tanh, ggml_attention, into_array, round_to_f16,
};
use crate::lm::BatchEntry;

/// Weights and constants of one decoder layer.
#[derive(Debug)]
pub(super) struct Block {
    index: usize,
    attn_norm: RmsNorm,
    q: QLinear,
    k: QLinear,
    v: QLinear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    o: QLinear,
    post_attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
    gate: QLinear,
    up: QLinear,
    down: QLinear,
    post_ffn_norm: RmsNorm,
    /// The RoPE table this layer uses (shared with the other layers of the same base).
    pub(super) rope: Arc<RopeTable>,
    window: Option<usize>,
    /// The last layer: llama.cpp runs its feed-forward on the output rows alone.
    last: bool,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f64,
}

impl Block {
    pub(super) fn load(
        g: &GgufFile,
        cfg: &Gemma3Config,
        index: usize,
        rope: Arc<RopeTable>,
        device: &Device,
    ) -> Result<Self> {
        let name = |t: &str| format!("blk.{index}.{t}.weight");
        let norm = |t: &str| RmsNorm::load(g, &name(t), device, cfg.eps);
        let lin = |t: &str| QLinear::load(g, &name(t), device);
        let local = cfg.local_layers.get(index).copied().unwrap_or(false);
        let block = Self {
            index,
            attn_norm: norm("attn_norm")?,
            q: lin("attn_q")?,
            k: lin("attn_k")?,
            v: lin("attn_v")?,
            q_norm: norm("attn_q_norm")?,
            k_norm: norm("attn_k_norm")?,
            o: lin("attn_output")?,
            post_attn_norm: norm("post_attention_norm")?,
            ffn_norm: norm("ffn_norm")?,
            gate: lin("ffn_gate")?,
            up: lin("ffn_up")?,
            down: lin("ffn_down")?,
            post_ffn_norm: norm("post_ffw_norm")?,
            rope,
            window: if local { cfg.sliding_window } else { None },
            last: index + 1 == cfg.layers,
            heads: cfg.heads,
            kv_heads: cfg.kv_heads,
            head_dim: cfg.head_dim,
            scale: cfg.attn_scale,
        };
        block.check_shapes(cfg)?;
        Ok(block)
    }

    fn check_shapes(&self, cfg: &Gemma3Config) -> Result<()> {
        let q_dim = cfg.heads * cfg.head_dim;
        let kv_dim = cfg.kv_heads * cfg.head_dim;
        let expect = [
            ("attn_q", &self.q, q_dim, cfg.hidden),
            ("attn_k", &self.k, kv_dim, cfg.hidden),
            ("attn_v", &self.v, kv_dim, cfg.hidden),
            ("attn_output", &self.o, cfg.hidden, q_dim),
            ("ffn_gate", &self.gate, cfg.ffn, cfg.hidden),
            ("ffn_up", &self.up, cfg.ffn, cfg.hidden),
            ("ffn_down", &self.down, cfg.hidden, cfg.ffn),
        ];
        for (name, lin, out, inp) in expect {
            if lin.out_features() != out || lin.in_features() != inp {
                return Err(crate::ModelError::Format(format!(
                    "blk.{}.{name}.weight is [{} x {}], expected [{out} x {inp}]",
                    self.index,
                    lin.out_features(),
                    lin.in_features()
                )));
            }
        }
        let norms = [
            (&self.attn_norm, cfg.hidden),
            (&self.q_norm, cfg.head_dim),
            (&self.k_norm, cfg.head_dim),
            (&self.post_attn_norm, cfg.hidden),
            (&self.ffn_norm, cfg.hidden),
            (&self.post_ffn_norm, cfg.hidden),
        ];
        if norms.iter().any(|(n, d)| n.dim() != *d) {
            return Err(crate::ModelError::Format(format!(
                "blk.{}: a norm weight has the wrong size",
                self.index
            )));
        }
        Ok(())
    }

    /// Runs the layer on `x` (`[total_tokens, hidden]`), appending each entry's new keys and
    /// values to its cache. `cos`/`sin` are this layer's RoPE rows for the packed positions;
    /// `orders` the float order of each row's K-quant products (see [`RowOrder::chunk`]).
    pub(super) fn forward(
        &self,
        x: &Tensor,
        layout: &BatchLayout,
        entries: &mut [BatchEntry<'_>],
        (cos, sin): (&Tensor, &Tensor),
        orders: &[RowOrder],
    ) -> Result<Tensor> {
        let tokens = x.dim(0)?;
        let h = self.attn_norm.forward(x)?;
        let [q, k, v] = into_array(forward_many(&[&self.q, &self.k, &self.v], &h)?)?;
        let q = q.reshape((tokens, self.heads, self.head_dim))?;
        let k = k.reshape((tokens, self.kv_heads, self.head_dim))?;
        let v = v.reshape((tokens, self.kv_heads, self.head_dim))?;
        let q = apply_rope(&self.q_norm.forward(&q)?.transpose(0, 1)?, cos, sin)?;
        let k = apply_rope(&self.k_norm.forward(&k)?.transpose(0, 1)?, cos, sin)?;
        let v = v.transpose(0, 1)?.contiguous()?;
        // llama.cpp scales the queries and keeps K and V in an f16 cache; its CPU attention
        // rounds the queries of short chunks to f16 too (and accumulates in f16, see
        // `ggml_attention`), those of long chunks not. The same rounding keeps the results close
        // to its. Other devices round the queries always.
        let q = (q * self.scale)?;
        let cpu = q.device().is_cpu();
        let q = if cpu { q } else { round_to_f16(&q)? };
        let kv_dtype = crate::lm::kv_dtype(q.device());
        let (k, v) = if kv_dtype == DType::F16 {
            (k.to_dtype(DType::F16)?, v.to_dtype(DType::F16)?)
        } else {
            (round_to_f16(&k)?, round_to_f16(&v)?)
        };

        let mut outs = Vec::with_capacity(layout.spans.len());
        for (entry, span) in entries.iter_mut().zip(&layout.spans) {
            let (k_all, v_all, key_offset) = entry.cache.append(
                self.index,
                &k.narrow(1, span.offset, span.len)?,
                &v.narrow(1, span.offset, span.len)?,
            )?;
            let q_e = q.narrow(1, span.offset, span.len)?;
            outs.push(if cpu && span.len < GGML_FA_TILE_Q {
                let q_e = round_to_f16(&q_e)?;
                ggml_attention(
                    &q_e,
                    &k_all,
                    &v_all,
                    span.past,
                    key_offset,
                    self.window,
                    1.0,
                )?
            } else {
                let (k_all, v_all) = (k_all.to_dtype(q.dtype())?, v_all.to_dtype(q.dtype())?);
                attention(
                    &q_e,
                    &k_all,
                    &v_all,
                    span.past,
                    key_offset,
                    self.window,
                    1.0,
                )?
            });
        }
        let attn = if outs.len() == 1 {
            outs.swap_remove(0)
        } else {
            Tensor::cat(&outs, 1)?
        };
        let attn = attn
            .transpose(0, 1)?
            .reshape((tokens, self.heads * self.head_dim))?;
        let attn = self
            .post_attn_norm
            .forward(&self.o.forward_ordered(&attn, orders)?)?;
        let x = (x + attn)?;

        let h = self.ffn_norm.forward(&x)?;
        let [gate, up] = into_array(forward_many(&[&self.gate, &self.up], &h)?)?;
        let gate = gelu_tanh(&gate)?;
        // llama.cpp's last layer multiplies its output rows alone, one at a time in decode order.
        let ffn_orders = if self.last { &[] } else { orders };
        let mlp = self.down.forward_ordered(&(gate * up)?, ffn_orders)?;
        let mlp = self.post_ffn_norm.forward(&mlp)?;
        Ok((x + mlp)?)
    }
}
