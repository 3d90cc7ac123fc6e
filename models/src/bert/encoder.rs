//! The BERT encoder network: embeddings, self-attention layers and pooling, run on a padded
//! batch with an attention mask so that padding never changes a sequence's result.
//!
//! Every linear layer runs as one `[batch * seq, in] x [in, out]` matmul; the query, key and
//! value projections of a layer are fused into one weight at load time.

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::{BertConfig, Pooling};
use crate::{ModelError, Result};

/// Added to the attention scores of padding keys: their softmax weight underflows to exactly 0.
const MASKED_SCORE: f32 = -1.0e30;
/// Added to padding positions before max pooling, as sentence-transformers does.
const MAX_POOL_PADDING: f64 = -1.0e9;
/// Lower bound of the norm divided by in L2 normalisation (`torch.nn.functional.normalize`).
const NORM_EPS: f64 = 1e-12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// `gelu` in Hugging Face configs: the exact, erf-based GELU.
    GeluErf,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    Relu,
}

impl Activation {
    pub(super) fn parse(name: &str) -> Result<Self> {
        match name {
            "gelu" => Ok(Self::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            other => Err(ModelError::Unsupported(format!(
                "BERT hidden_act {other:?} (supported: gelu, gelu_new, gelu_pytorch_tanh, relu)"
            ))),
        }
    }

    fn apply(self, xs: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::GeluErf => xs.gelu_erf()?,
            Self::GeluTanh => xs.gelu()?,
            Self::Relu => xs.relu()?,
        })
    }
}

/// `y = x W^T + b` on a 2-D input `[rows, in]`. `W^T` is stored contiguous as `[in, out]`, the
/// layout the CPU matmul runs fastest with (no per-call repacking of a strided operand).
pub(super) struct Linear {
    pub(super) weight_t: Tensor,
    pub(super) bias: Tensor,
}

impl Linear {
    fn load(vb: &VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        Ok(Self {
            weight_t: weight.t()?.contiguous()?,
            bias: vb.get(out_dim, "bias")?,
        })
    }

    /// The query, key and value projections stacked into one `[3 * hidden, hidden]` weight.
    fn load_qkv(vb: &VarBuilder, hidden: usize) -> Result<Self> {
        let parts = ["query", "key", "value"]
            .iter()
            .map(|name| Self::load(&vb.pp(name), hidden, hidden))
            .collect::<Result<Vec<_>>>()?;
        let weights: Vec<&Tensor> = parts.iter().map(|p| &p.weight_t).collect();
        let biases: Vec<&Tensor> = parts.iter().map(|p| &p.bias).collect();
        Ok(Self {
            weight_t: Tensor::cat(&weights, 1)?,
            bias: Tensor::cat(&biases, 0)?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(xs.matmul(&self.weight_t)?.broadcast_add(&self.bias)?)
    }

    fn bytes(&self) -> usize {
        tensor_bytes(&self.weight_t) + tensor_bytes(&self.bias)
    }
}

pub(super) struct LayerNorm {
    pub(super) weight: Tensor,
    pub(super) bias: Tensor,
    pub(super) eps: f32,
}

impl LayerNorm {
    fn load(vb: &VarBuilder, hidden: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(hidden, "weight")?,
            bias: vb.get(hidden, "bias")?,
            eps: eps as f32,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = xs.contiguous()?;
        Ok(candle_nn::ops::layer_norm(
            &xs,
            &self.weight,
            &self.bias,
            self.eps,
        )?)
    }

    fn bytes(&self) -> usize {
        tensor_bytes(&self.weight) + tensor_bytes(&self.bias)
    }
}

pub(super) struct Layer {
    pub(super) qkv: Linear,
    pub(super) attn_out: Linear,
    pub(super) attn_norm: LayerNorm,
    pub(super) intermediate: Linear,
    pub(super) output: Linear,
    pub(super) out_norm: LayerNorm,
}

impl Layer {
    fn load(vb: &VarBuilder, cfg: &BertConfig) -> Result<Self> {
        let (h, i, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        let attn = vb.pp("attention");
        Ok(Self {
            qkv: Linear::load_qkv(&attn.pp("self"), h)?,
            attn_out: Linear::load(&attn.pp("output").pp("dense"), h, h)?,
            attn_norm: LayerNorm::load(&attn.pp("output").pp("LayerNorm"), h, eps)?,
            intermediate: Linear::load(&vb.pp("intermediate").pp("dense"), h, i)?,
            output: Linear::load(&vb.pp("output").pp("dense"), i, h)?,
            out_norm: LayerNorm::load(&vb.pp("output").pp("LayerNorm"), h, eps)?,
        })
    }

    fn bytes(&self) -> usize {
        self.qkv.bytes()
            + self.attn_out.bytes()
            + self.attn_norm.bytes()
            + self.intermediate.bytes()
            + self.output.bytes()
            + self.out_norm.bytes()
    }
}

/// The loaded encoder. Immutable, so one instance serves any number of threads.
pub(super) struct Encoder {
    pub(super) word_embeddings: Tensor,
    /// Position embeddings with the token-type-0 embedding already added: `[max_positions, hidden]`.
    pub(super) position_type_embeddings: Tensor,
    pub(super) embed_norm: LayerNorm,
    pub(super) layers: Vec<Layer>,
    pub(super) heads: usize,
    pub(super) head_dim: usize,
    pub(super) hidden: usize,
    pub(super) activation: Activation,
    pub(super) pooling: Pooling,
    device: Device,
}

impl Encoder {
    /// Loads the weights under `vb`, which points at the BERT root (`embeddings.*`, `encoder.*`).
    pub(super) fn load(
        vb: &VarBuilder,
        cfg: &BertConfig,
        pooling: Pooling,
        device: &Device,
    ) -> Result<Self> {
        let h = cfg.hidden_size;
        let emb = vb.pp("embeddings");
        let word_embeddings = emb.get((cfg.vocab_size, h), "word_embeddings.weight")?;
        let positions = emb.get(
            (cfg.max_position_embeddings, h),
            "position_embeddings.weight",
        )?;
        let token_type0 = emb
            .get((cfg.type_vocab_size, h), "token_type_embeddings.weight")?
            .get(0)?;
        let layers_vb = vb.pp("encoder").pp("layer");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(&layers_vb.pp(i), cfg))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word_embeddings,
            position_type_embeddings: positions.broadcast_add(&token_type0)?,
            embed_norm: LayerNorm::load(&emb.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            layers,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
            hidden: h,
            activation: Activation::parse(&cfg.hidden_act)?,
            pooling,
            device: device.clone(),
        })
    }

    /// Bytes of the tensors this encoder holds.
    pub(super) fn bytes(&self) -> usize {
        tensor_bytes(&self.word_embeddings)
            + tensor_bytes(&self.position_type_embeddings)
            + self.embed_norm.bytes()
            + self.layers.iter().map(Layer::bytes).sum::<usize>()
    }

    /// Pooled, L2-normalised embeddings of `seqs` (already validated: non-empty, in-vocabulary,
    /// no longer than the position table), as `[seqs.len(), hidden]` rows.
    pub(super) fn embed(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let batch = seqs.len();
        let seq_len = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        if batch == 0 || seq_len == 0 {
            return Ok(Vec::new());
        }
        let mut ids = vec![0u32; batch * seq_len];
        let mut keep = vec![0f32; batch * seq_len];
        for (row, seq) in seqs.iter().enumerate() {
            let start = row * seq_len;
            ids[start..start + seq.len()].copy_from_slice(seq);
            keep[start..start + seq.len()].fill(1.0);
        }
        let ids = Tensor::from_vec(ids, batch * seq_len, &self.device)?;
        let keep = Tensor::from_vec(keep, (batch, seq_len), &self.device)?;
        // 0 for real keys, MASKED_SCORE for padding, shaped to broadcast over heads and queries.
        let attn_mask = ((keep.ones_like()? - &keep)? * f64::from(MASKED_SCORE))?
            .reshape((batch, 1, 1, seq_len))?;

        let mut xs = self
            .word_embeddings
            .index_select(&ids, 0)?
            .reshape((batch, seq_len, self.hidden))?
            .broadcast_add(&self.position_type_embeddings.narrow(0, 0, seq_len)?)?
            .reshape((batch * seq_len, self.hidden))?;
        xs = self.embed_norm.forward(&xs)?;
        for layer in &self.layers {
            xs = self.layer_forward(layer, &xs, &attn_mask, batch, seq_len)?;
        }
        let pooled = self.pool(&xs.reshape((batch, seq_len, self.hidden))?, &keep)?;
        let norm = pooled
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .maximum(NORM_EPS)?;
        let normalised = pooled.broadcast_div(&norm)?.to_dtype(DType::F32)?;
        Ok(normalised.to_vec2::<f32>()?)
    }

    fn layer_forward(
        &self,
        layer: &Layer,
        xs: &Tensor,
        attn_mask: &Tensor,
        batch: usize,
        seq_len: usize,
    ) -> Result<Tensor> {
        let (heads, head_dim) = (self.heads, self.head_dim);
        // [3, batch, heads, seq, head_dim]
        let qkv = layer
            .qkv
            .forward(xs)?
            .reshape((batch, seq_len, 3, heads, head_dim))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let scale = 1.0 / (head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(attn_mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch * seq_len, self.hidden))?;
        let attended = layer
            .attn_norm
            .forward(&(layer.attn_out.forward(&context)? + xs)?)?;
        let inner = self
            .activation
            .apply(&layer.intermediate.forward(&attended)?)?;
        layer
            .out_norm
            .forward(&(layer.output.forward(&inner)? + attended)?)
    }

    /// `hidden` is `[batch, seq, hidden]`, `keep` is `[batch, seq]` with 1 for real tokens.
    fn pool(&self, hidden: &Tensor, keep: &Tensor) -> Result<Tensor> {
        let keep3 = keep.unsqueeze(D::Minus1)?;
        Ok(match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Max => {
                let padding = ((keep3.ones_like()? - &keep3)? * MAX_POOL_PADDING)?;
                hidden.broadcast_add(&padding)?.max(1)?
            }
            Pooling::Mean | Pooling::MeanSqrtLen => {
                let sum = hidden.broadcast_mul(&keep3)?.sum(1)?;
                let count = keep.sum_keepdim(1)?;
                let divisor = if self.pooling == Pooling::Mean {
                    count
                } else {
                    count.sqrt()?
                };
                sum.broadcast_div(&divisor)?
            }
        })
    }
}

fn tensor_bytes(t: &Tensor) -> usize {
    t.elem_count() * t.dtype().size_in_bytes()
}
