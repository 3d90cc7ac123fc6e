//! One Llama-family decoder layer over packed ragged-batch activations: pre-normed attention
//! (optional Q/K/V biases, optional per-head Q/K RMSNorm, RoPE, grouped KV heads) and a SwiGLU
//! feed-forward, computed as llama.cpp's CPU backend computes them.

use candle_core::{DType, Device, Tensor};

use super::config::LlamaConfig;
use crate::gguf::GgufFile;
use crate::kernels::RowOrder;
use crate::layers::{
    BatchLayout, GGML_FA_TILE_Q, QLinear, RmsNorm, apply_rope, apply_rope_pairs, attention,
    forward_many, ggml_attention, ggml_attention_tiled, into_array, round_to_f16, swiglu,
};
use crate::lm::BatchEntry;
use crate::{ModelError, Result};

/// Weights and constants of one decoder layer.
#[derive(Debug)]
pub(super) struct Block {
    index: usize,
    attn_norm: RmsNorm,
    q: QLinear,
    k: QLinear,
    v: QLinear,
    /// Biases of the query, key and value projections (Qwen2).
    qkv_bias: Option<[Tensor; 3]>,
    /// Per-head RMSNorm of queries and keys (Qwen3).
    qk_norm: Option<[RmsNorm; 2]>,
    o: QLinear,
    ffn_norm: RmsNorm,
    gate: QLinear,
    up: QLinear,
    down: QLinear,
    neox: bool,
    /// The last layer: llama.cpp runs its feed-forward on the output rows alone.
    last: bool,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f32,
}

impl Block {
    pub(super) fn load(
        g: &GgufFile,
        cfg: &LlamaConfig,
        index: usize,
        device: &Device,
    ) -> Result<Self> {
        let name = |t: &str| format!("blk.{index}.{t}.weight");
        let norm = |t: &str| RmsNorm::load(g, &name(t), device, cfg.eps);
        let lin = |t: &str| QLinear::load(g, &name(t), device);
        let bias = |t: &str| -> Result<Tensor> {
            let t = g.tensor(&format!("blk.{index}.{t}.bias"), device)?;
            Ok(t.dequantize(device)?.to_dtype(DType::F32)?)
        };
        let has_bias = (0..3).all(|i| {
            let t = ["attn_q", "attn_k", "attn_v"][i];
            g.has_tensor(&format!("blk.{index}.{t}.bias"))
        });
        let qkv_bias = if cfg.family.qkv_bias() || has_bias {
            Some([bias("attn_q")?, bias("attn_k")?, bias("attn_v")?])
        } else {
            None
        };
        let qk_norm = if cfg.family.qk_norm() {
            Some([norm("attn_q_norm")?, norm("attn_k_norm")?])
        } else {
            None
        };
        let block = Self {
            index,
            attn_norm: norm("attn_norm")?,
            q: lin("attn_q")?,
            k: lin("attn_k")?,
            v: lin("attn_v")?,
            qkv_bias,
            qk_norm,
            o: lin("attn_output")?,
            ffn_norm: norm("ffn_norm")?,
            gate: lin("ffn_gate")?,
            up: lin("ffn_up")?,
            down: lin("ffn_down")?,
            neox: cfg.family.neox_rope(),
            last: index + 1 == cfg.layers,
            heads: cfg.heads,
            kv_heads: cfg.kv_heads,
            head_dim: cfg.head_dim,
            scale: cfg.attn_scale,
        };
        block.check_shapes(cfg)?;
        Ok(block)
    }

    fn check_shapes(&self, cfg: &LlamaConfig) -> Result<()> {
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
                return Err(ModelError::Format(format!(
                    "blk.{}.{name}.weight is [{} x {}], expected [{out} x {inp}]",
                    self.index,
                    lin.out_features(),
                    lin.in_features()
                )));
            }
        }
        let mut norms = vec![
            (self.attn_norm.dim(), cfg.hidden),
            (self.ffn_norm.dim(), cfg.hidden),
        ];
        if let Some([qn, kn]) = &self.qk_norm {
            norms.extend([(qn.dim(), cfg.head_dim), (kn.dim(), cfg.head_dim)]);
        }
        if let Some([qb, kb, vb]) = &self.qkv_bias {
            norms.extend([
                (qb.elem_count(), q_dim),
                (kb.elem_count(), kv_dim),
                (vb.elem_count(), kv_dim),
            ]);
        }
        if norms.iter().any(|(got, want)| got != want) {
            return Err(ModelError::Format(format!(
                "blk.{}: a norm or bias has the wrong size",
                self.index
            )));
        }
        Ok(())
    }

    /// Runs the layer on `x` (`[total_tokens, hidden]`), appending each entry's new keys and
    /// values to its cache. `cos`/`sin` are the RoPE rows of the packed positions; `orders` the
    /// float order of each row's K-quant products (see [`RowOrder::chunk`]).
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
        let [mut q, mut k, mut v] = into_array(forward_many(&[&self.q, &self.k, &self.v], &h)?)?;
        if let Some([qb, kb, vb]) = &self.qkv_bias {
            q = q.broadcast_add(qb)?;
            k = k.broadcast_add(kb)?;
            v = v.broadcast_add(vb)?;
        }
        let mut q = q.reshape((tokens, self.heads, self.head_dim))?;
        let mut k = k.reshape((tokens, self.kv_heads, self.head_dim))?;
        let v = v.reshape((tokens, self.kv_heads, self.head_dim))?;
        if let Some([qn, kn]) = &self.qk_norm {
            q = qn.forward(&q)?;
            k = kn.forward(&k)?;
        }
        let rope = if self.neox {
            apply_rope
        } else {
            apply_rope_pairs
        };
        let q = rope(&q.transpose(0, 1)?, cos, sin)?;
        let k = rope(&k.transpose(0, 1)?, cos, sin)?;
        let v = v.transpose(0, 1)?.contiguous()?;
        // llama.cpp keeps K and V in an f16 cache and its CPU flash attention rounds the
        // queries of short chunks to f16, scaling each score afterwards (`ggml_attention`);
        // long chunks go through its tiled kernel with f32 queries (`ggml_attention_tiled`).
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
                    &q_e, &k_all, &v_all, span.past, key_offset, None, self.scale,
                )?
            } else if cpu && key_offset == 0 {
                ggml_attention_tiled(&q_e, &k_all, &v_all, span.past, self.scale)?
            } else {
                let (k_all, v_all) = (k_all.to_dtype(q.dtype())?, v_all.to_dtype(q.dtype())?);
                attention(
                    &q_e,
                    &k_all,
                    &v_all,
                    span.past,
                    key_offset,
                    None,
                    f64::from(self.scale),
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
        let x = (x + self.o.forward_ordered(&attn, orders)?)?;

        let h = self.ffn_norm.forward(&x)?;
        let [gate, up] = into_array(forward_many(&[&self.gate, &self.up], &h)?)?;
        let act = swiglu(&gate, &up)?;
        // llama.cpp's last layer multiplies its output rows alone, one at a time in decode order.
        let ffn_orders = if self.last { &[] } else { orders };
        let mlp = self.down.forward_ordered(&act, ffn_orders)?;
        Ok((x + mlp)?)
    }
}
