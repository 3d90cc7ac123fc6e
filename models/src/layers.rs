//! Building blocks shared by the GGUF decoder architectures: quantised linear layers, RMSNorm,
//! the RoPE cos/sin table, the ragged-batch layout, and masked grouped-query attention over one
//! sequence's cache.
//!
//! Activations of a batched forward pass are packed as `[total_tokens, hidden]`: every entry's new
//! tokens one after the other, so that each weight matrix is read once per pass. Attention is
//! the only per-entry step; it sees the entry's queries and its cached plus new keys.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::gguf::GgufFile;
use crate::lm::BatchEntry;
use crate::{ModelError, Result};

/// A linear layer without bias whose weight stays in its stored (usually quantised) type.
///
/// Each output row depends only on its input row, bit for bit, whatever the number of rows, so
/// a sequence's results do not depend on what else is in its batch. candle 0.11 multiplies a
/// Q6K weight by a single row with a different kernel (compact GEMV) than by several rows
/// (repacked tiles), and the two round differently; a single row is therefore duplicated for
/// Q6K weights so that every row takes the multi-row kernel.
#[derive(Debug, Clone)]
pub struct QLinear {
    inner: QMatMul,
    out_features: usize,
    in_features: usize,
    pad_single_row: bool,
}

impl QLinear {
    /// Loads weight `name` (`[out, in]`).
    pub fn load(gguf: &GgufFile, name: &str, device: &Device) -> Result<Self> {
        Self::from_arc(Arc::new(gguf.tensor(name, device)?))
    }

    /// Wraps a tensor that may be shared with another user (a tied embedding).
    pub fn from_arc(weight: Arc<QTensor>) -> Result<Self> {
        let (out_features, in_features) = weight.shape().dims2()?;
        let pad_single_row = weight.dtype() == GgmlDType::Q6K && weight.device().is_cpu();
        Ok(Self {
            inner: QMatMul::from_arc(weight)?,
            out_features,
            in_features,
            pad_single_row,
        })
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// `x · Wᵀ` for `x` of shape `[.., in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        if self.pad_single_row && x.elem_count() == self.in_features {
            let mut dims = x.dims().to_vec();
            if let Some(last) = dims.last_mut() {
                *last = self.out_features;
            }
            let two = x.reshape((1, self.in_features))?.repeat((2, 1))?;
            return Ok(self.inner.forward(&two)?.narrow(0, 0, 1)?.reshape(dims)?);
        }
        Ok(self.inner.forward(&x)?)
    }
}

/// Root-mean-square normalisation over the last dimension, with the weight used as stored.
///
/// On the CPU it is computed as ggml computes it (sum of squares accumulated in f64,
/// `x · (1/sqrt(mean + eps))`, then `· weight`), so that results track llama.cpp's.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    weight_cpu: Option<Vec<f32>>,
    eps: f32,
}

impl RmsNorm {
    pub fn load(gguf: &GgufFile, name: &str, device: &Device, eps: f32) -> Result<Self> {
        let weight = gguf.tensor(name, device)?.dequantize(device)?;
        Self::new(weight, eps)
    }

    pub fn new(weight: Tensor, eps: f32) -> Result<Self> {
        let weight_cpu = if weight.device().is_cpu() && weight.dtype() == DType::F32 {
            Some(weight.flatten_all()?.to_vec1::<f32>()?)
        } else {
            None
        };
        Ok(Self {
            weight,
            weight_cpu,
            eps,
        })
    }

    pub fn dim(&self) -> usize {
        self.weight.elem_count()
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        match &self.weight_cpu {
            Some(weight) if x.device().is_cpu() && x.dtype() == DType::F32 => {
                Ok(x.apply_op1_no_bwd(&GgmlRmsNorm {
                    weight,
                    eps: self.eps,
                })?)
            }
            _ => Ok(candle_nn::ops::rms_norm(&x, &self.weight, self.eps)?),
        }
    }
}

/// ggml's CPU RMSNorm followed by the multiplication by the weight.
struct GgmlRmsNorm<'a> {
    weight: &'a [f32],
    eps: f32,
}

impl candle_core::CustomOp1 for GgmlRmsNorm<'_> {
    fn name(&self) -> &'static str {
        "ggml-rms-norm"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let candle_core::CpuStorage::F32(data) = storage else {
            candle_core::bail!("ggml-rms-norm expects f32")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("ggml-rms-norm expects a contiguous input")
        };
        let n = self.weight.len();
        if n == 0 || layout.dims().last() != Some(&n) {
            candle_core::bail!("ggml-rms-norm: input {:?} vs weight {n}", layout.dims())
        }
        let mut out = vec![0f32; end - start];
        for (src, dst) in data[start..end]
            .chunks_exact(n)
            .zip(out.chunks_exact_mut(n))
        {
            let sum: f64 = src.iter().map(|&v| f64::from(v * v)).sum();
            let mean = (sum / n as f64) as f32;
            let scale = 1.0 / (mean + self.eps).sqrt();
            for ((d, &v), &w) in dst.iter_mut().zip(src).zip(self.weight) {
                *d = (v * scale) * w;
            }
        }
        Ok((candle_core::CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// The cos/sin table of rotary position embeddings for one frequency base, `[positions, dim/2]`.
/// One table is built per base and shared (through `Arc`) by every layer that uses it.
#[derive(Debug)]
pub struct RopeTable {
    cos: Tensor,
    sin: Tensor,
    dim: usize,
}

impl RopeTable {
    /// Angles `position * freq_scale * base^(-2i/dim)` for `positions` positions, computed in
    /// f32 as ggml computes them (`base^(-2/dim)` raised by repeated multiplication).
    pub fn new(
        base: f32,
        freq_scale: f32,
        dim: usize,
        positions: usize,
        device: &Device,
    ) -> Result<Arc<Self>> {
        if dim == 0 || dim % 2 != 0 {
            return Err(ModelError::Format(format!(
                "RoPE dimension {dim} must be even"
            )));
        }
        let half = dim / 2;
        let theta_scale = base.powf(-2.0 / dim as f32);
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            let mut theta = p as f32;
            for _ in 0..half {
                let (s, c) = (freq_scale * theta).sin_cos();
                cos.push(c);
                sin.push(s);
                theta *= theta_scale;
            }
        }
        Ok(Arc::new(Self {
            cos: Tensor::from_vec(cos, (positions, half), device)?,
            sin: Tensor::from_vec(sin, (positions, half), device)?,
            dim,
        }))
    }

    pub fn positions(&self) -> usize {
        self.cos.dims()[0]
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The rows for each token's position (`positions`: U32 `[tokens]`), each `[tokens, dim/2]`.
    pub fn rows(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.cos.index_select(positions, 0)?,
            self.sin.index_select(positions, 0)?,
        ))
    }
}

/// Rotates `x` (`[heads, tokens, dim]`) NeoX-style (first half with second half) by the rows
/// from [`RopeTable::rows`].
pub fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?.unsqueeze(0)?;
    Ok(candle_nn::rotary_emb::rope(&x, cos, sin)?.squeeze(0)?)
}

/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` in f32, the formula of ggml's table.
fn gelu_tanh_f32(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

/// ggml's GELU table: the f16-rounded GELU of every f16 value, indexed by its bits.
fn gelu_f16_table() -> &'static [half::f16] {
    static TABLE: std::sync::OnceLock<Vec<half::f16>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| half::f16::from_f32(gelu_tanh_f32(half::f16::from_bits(bits).to_f32())))
            .collect()
    })
}

/// ggml's GELU of one value (see [`GgmlGelu`]).
pub(crate) fn ggml_gelu(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        gelu_f16_table()[usize::from(half::f16::from_f32(x).to_bits())].to_f32()
    }
}

/// GELU (tanh approximation) evaluated as ggml's CPU backend evaluates it, so that results
/// track llama.cpp's: inputs at or below -10 give 0, at or above 10 pass through, others are
/// rounded to f16 and looked up in a table of f16-rounded results.
struct GgmlGelu;

impl candle_core::CustomOp1 for GgmlGelu {
    fn name(&self) -> &'static str {
        "ggml-gelu"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let candle_core::CpuStorage::F32(data) = storage else {
            candle_core::bail!("ggml-gelu expects f32")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("ggml-gelu expects a contiguous input")
        };
        let out: Vec<f32> = data[start..end].iter().map(|&x| ggml_gelu(x)).collect();
        Ok((candle_core::CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// GELU with the tanh approximation; on the CPU with f32 input, computed exactly as ggml does
/// (see [`GgmlGelu`]), elsewhere with candle's `gelu`.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        Ok(x.contiguous()?.apply_op1_no_bwd(&GgmlGelu)?)
    } else {
        Ok(x.gelu()?)
    }
}

/// Rounds `x` to f16 precision (kept in its dtype), as llama.cpp's f16 KV cache and its f16
/// attention inputs do.
pub fn round_to_f16(x: &Tensor) -> Result<Tensor> {
    let dtype = x.dtype();
    Ok(x.to_dtype(DType::F16)?.to_dtype(dtype)?)
}

/// Where one entry's new tokens sit in the packed activations.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// First row of this entry in the packed `[total_tokens, …]` activations.
    pub offset: usize,
    /// New tokens of this entry.
    pub len: usize,
    /// Positions already in this entry's cache (the first new token's position).
    pub past: usize,
}

/// The packed layout of a ragged batch, validated against the model's limits.
#[derive(Debug)]
pub struct BatchLayout {
    pub spans: Vec<Span>,
    pub token_ids: Vec<u32>,
    pub positions: Vec<u32>,
}

impl BatchLayout {
    /// Checks every entry (non-empty, ids below `vocab_size`, positions within
    /// `context_length`, a cache of `n_layers` layers) and packs their tokens.
    pub fn new(
        entries: &[BatchEntry<'_>],
        vocab_size: usize,
        context_length: usize,
        n_layers: usize,
    ) -> Result<Self> {
        if entries.is_empty() {
            return Err(ModelError::Input("empty batch".into()));
        }
        let mut spans = Vec::with_capacity(entries.len());
        let mut token_ids = Vec::new();
        let mut positions = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if e.tokens.is_empty() {
                return Err(ModelError::Input(format!("batch entry {i} has no tokens")));
            }
            if let Some(bad) = e.tokens.iter().find(|&&t| t as usize >= vocab_size) {
                return Err(ModelError::Input(format!(
                    "batch entry {i}: token id {bad} is outside the vocabulary of {vocab_size}"
                )));
            }
            if e.cache.n_layers() != n_layers {
                return Err(ModelError::Input(format!(
                    "batch entry {i}: cache has {} layers, the model {n_layers}",
                    e.cache.n_layers()
                )));
            }
            let past = e.cache.len();
            let end = past + e.tokens.len();
            if end > context_length {
                return Err(ModelError::Input(format!(
                    "batch entry {i}: positions up to {end} exceed the context length {context_length}"
                )));
            }
            spans.push(Span {
                offset: token_ids.len(),
                len: e.tokens.len(),
                past,
            });
            token_ids.extend_from_slice(e.tokens);
            positions.extend((past..end).map(|p| p as u32));
        }
        Ok(Self {
            spans,
            token_ids,
            positions,
        })
    }

    pub fn total_tokens(&self) -> usize {
        self.token_ids.len()
    }

    /// Row index of each entry's last new token, as a U32 tensor.
    pub fn last_rows(&self, device: &Device) -> Result<Tensor> {
        let rows: Vec<u32> = self
            .spans
            .iter()
            .map(|s| (s.offset + s.len - 1) as u32)
            .collect();
        Ok(Tensor::new(rows, device)?)
    }
}

/// Additive mask (`0` or `-inf`) for `queries` queries at positions `query_start..` over keys at
/// positions `key_start..key_start + keys`: a key is visible when it is not after the query and,
/// with a sliding `window`, when `key > query - window`. `None` when every key is visible.
pub fn attention_mask(
    query_start: usize,
    queries: usize,
    key_start: usize,
    keys: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Option<Tensor>> {
    let visible = |q: usize, k: usize| k <= q && window.is_none_or(|w| k + w > q);
    let all_visible = (0..queries).all(|i| {
        let q = query_start + i;
        visible(q, key_start) && visible(q, key_start + keys - 1)
    });
    if all_visible {
        return Ok(None);
    }
    let mut mask = Vec::with_capacity(queries * keys);
    for i in 0..queries {
        let q = query_start + i;
        mask.extend((0..keys).map(|j| {
            if visible(q, key_start + j) {
                0f32
            } else {
                f32::NEG_INFINITY
            }
        }));
    }
    Ok(Some(Tensor::from_vec(mask, (queries, keys), device)?))
}

/// Scaled dot-product attention of one sequence with grouped KV heads.
///
/// `q`: `[heads, queries, dim]` at positions `query_start..`; `k`, `v`: `[kv_heads, keys, dim]`
/// holding positions `0..keys` (the cache plus the new tokens). With a sliding `window`, keys no
/// query can see are skipped before the matmul. Returns `[heads, queries, dim]`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    query_start: usize,
    window: Option<usize>,
    scale: f64,
) -> Result<Tensor> {
    let (heads, queries, dim) = q.dims3()?;
    let (kv_heads, keys, _) = k.dims3()?;
    if kv_heads == 0 || heads % kv_heads != 0 {
        return Err(ModelError::Format(format!(
            "{heads} query heads cannot share {kv_heads} KV heads"
        )));
    }
    let key_start = window.map_or(0, |w| (query_start + 1).saturating_sub(w));
    let (k, v) = if key_start > 0 {
        (
            k.narrow(1, key_start, keys - key_start)?,
            v.narrow(1, key_start, keys - key_start)?,
        )
    } else {
        (k.clone(), v.clone())
    };
    let keys = keys - key_start;
    let group = heads / kv_heads;
    // Query heads of one KV head are adjacent, so each group becomes `group * queries` rows.
    let q = (q.contiguous()? * scale)?.reshape((kv_heads, group * queries, dim))?;
    let scores = q.matmul(&k.t()?)?;
    let scores = match attention_mask(query_start, queries, key_start, keys, window, q.device())? {
        Some(mask) => scores
            .reshape((kv_heads, group, queries, keys))?
            .broadcast_add(&mask)?
            .reshape((kv_heads, group * queries, keys))?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?;
    let out = probs.to_dtype(v.dtype())?.matmul(&v)?;
    Ok(out.reshape((heads, queries, dim))?)
}

/// Attention written out element by element, for tests: `q` `[heads, queries, dim]`, `k`/`v`
/// `[kv_heads, keys, dim]` at positions `0..keys`.
#[cfg(test)]
pub(crate) fn naive_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    query_start: usize,
    window: Option<usize>,
    scale: f64,
) -> Result<Tensor> {
    let (heads, queries, dim) = q.dims3()?;
    let (kv_heads, keys, _) = k.dims3()?;
    let q = q.to_vec3::<f32>()?;
    let k = k.to_vec3::<f32>()?;
    let v = v.to_vec3::<f32>()?;
    let mut out = vec![0f32; heads * queries * dim];
    for h in 0..heads {
        let kh = h / (heads / kv_heads);
        for i in 0..queries {
            let qp = query_start + i;
            let vis: Vec<usize> = (0..keys)
                .filter(|&j| j <= qp && window.is_none_or(|w| j + w > qp))
                .collect();
            let s: Vec<f64> = vis
                .iter()
                .map(|&j| {
                    (0..dim)
                        .map(|d| f64::from(q[h][i][d]) * f64::from(k[kh][j][d]))
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..dim {
                let acc: f64 = vis
                    .iter()
                    .zip(&e)
                    .map(|(&j, w)| w / z * f64::from(v[kh][j][d]))
                    .sum();
                out[(h * queries + i) * dim + d] = acc as f32;
            }
        }
    }
    Ok(Tensor::from_vec(out, (heads, queries, dim), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
    }

    #[test]
    fn attention_matches_naive_with_window_and_gqa() -> Result<()> {
        let dev = Device::Cpu;
        let keys = 11;
        for (queries, window) in [(1, None), (1, Some(4)), (5, None), (5, Some(3)), (11, Some(4))] {
            let q = Tensor::randn(0f32, 1., (4, queries, 8), &dev)?;
            let k = Tensor::randn(0f32, 1., (2, keys, 8), &dev)?;
            let v = Tensor::randn(0f32, 1., (2, keys, 8), &dev)?;
            let start = keys - queries;
            let a = attention(&q, &k, &v, start, window, 0.3)?;
            let b = naive_attention(&q, &k, &v, start, window, 0.3)?;
            assert!(max_diff(&a, &b)? < 1e-5, "queries {queries} window {window:?}");
        }
        Ok(())
    }

    #[test]
    fn rope_table_rows_follow_positions() -> Result<()> {
        let dev = Device::Cpu;
        let t = RopeTable::new(10_000., 1., 8, 16, &dev)?;
        let pos = Tensor::new(&[3u32, 0, 15], &dev)?;
        let (cos, sin) = t.rows(&pos)?;
        let cos = cos.to_vec2::<f32>()?;
        let sin = sin.to_vec2::<f32>()?;
        assert!((cos[0][0] - 3f32.cos()).abs() < 1e-6);
        assert!((sin[0][1] - (3f64 * 10_000f64.powf(-0.25)).sin() as f32).abs() < 1e-5);
        assert_eq!(cos[1], vec![1.0; 4]);
        assert!((cos[2][0] - 15f32.cos()).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn qlinear_rows_do_not_depend_on_batch_size() -> Result<()> {
        let dev = Device::Cpu;
        for dtype in [
            GgmlDType::Q4K,
            GgmlDType::Q6K,
            GgmlDType::Q5_0,
            GgmlDType::Q8_0,
        ] {
            let w = Tensor::randn(0f32, 1., (64, 512), &dev)?;
            let lin = QLinear::from_arc(Arc::new(QTensor::quantize(&w, dtype)?))?;
            let x = Tensor::randn(0f32, 1., (9, 512), &dev)?;
            for m in [1usize, 2, 3, 9] {
                let all = lin.forward(&x.narrow(0, 0, m)?)?;
                for r in 0..m {
                    let one = lin.forward(&x.narrow(0, r, 1)?)?;
                    let d = max_diff(&all.narrow(0, r, 1)?, &one)?;
                    assert_eq!(d, 0.0, "{dtype:?}: row {r} of {m}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn mask_skipped_when_everything_is_visible() -> Result<()> {
        let dev = Device::Cpu;
        assert!(attention_mask(9, 1, 0, 10, None, &dev)?.is_none());
        assert!(attention_mask(9, 1, 6, 4, Some(4), &dev)?.is_none());
        let m = attention_mask(2, 2, 0, 4, Some(2), &dev)?
            .ok_or_else(|| ModelError::Input("mask expected".into()))?
            .to_vec2::<f32>()?;
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![vec![inf, 0., 0., inf], vec![inf, inf, 0., 0.]]);
        Ok(())
    }
}

