//! Building blocks shared by the GGUF decoder architectures: quantised linear layers, RMSNorm
//! and the RoPE cos/sin table here; the ragged-batch layout and masked grouped-query attention
//! over one sequence's cache in [`attention`](mod@attention) (short chunks on the CPU in
//! [`ggml_attention`](mod@ggml_attention)); element-wise operations computed as ggml computes
//! them in [`ggml`]. Quantised products on the CPU use [`crate::kernels`].
//!
//! Activations of a batched forward pass are packed as `[total_tokens, hidden]`: every entry's new
//! tokens one after the other, so that each weight matrix is read once per pass. Attention is
//! the only per-entry step; it sees the entry's queries and its cached plus new keys.

pub mod attention;
pub mod ggml;
pub mod ggml_attention;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
mod ggml_attention_avx2;
pub mod ggml_flash_tiled;
pub mod ggml_silu;

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

pub use attention::{BatchLayout, Span, attention, attention_mask};
pub use ggml::{gelu_tanh, round_to_f16};
pub use ggml_attention::{GGML_FA_TILE_Q, ggml_attention};
pub use ggml_flash_tiled::ggml_attention_tiled;
pub use ggml_silu::swiglu;

use crate::gguf::GgufFile;
use crate::kernels::{QMatrix, RowOrder};
use crate::{ModelError, Result};

/// A linear layer without bias whose weight stays in its stored (usually quantised) type.
///
/// On the CPU, formats with a kernel in [`crate::kernels`] are multiplied there: activations
/// are quantised as ggml quantises them and each output row depends only on its input row and
/// its [`RowOrder`] (which the model derives from the row's own sequence chunk), bit for bit,
/// whatever the number of rows, so a sequence's results do not depend on what else is in its
/// batch. Other formats and devices use candle's `QMatMul`; there a single row is
/// duplicated for Q6K weights, which candle 0.11 multiplies by one row with a kernel that
/// rounds differently from its multi-row one.
#[derive(Debug, Clone)]
pub struct QLinear {
    /// candle's product, for weights without a CPU kernel here (not built otherwise, so that
    /// a repacked weight's original blocks are freed).
    inner: Option<QMatMul>,
    cpu: Option<QMatrix>,
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
        // Repacked only where this layer is the weight's one user: a repacked copy beside a
        // tied embedding's blocks would hold the matrix twice.
        let alone = Arc::strong_count(&weight) == 1;
        let cpu = QMatrix::with_repack(weight.clone(), alone);
        let pad_single_row =
            cpu.is_none() && weight.dtype() == GgmlDType::Q6K && weight.device().is_cpu();
        let inner = match cpu {
            Some(_) => None,
            None => Some(QMatMul::from_arc(weight)?),
        };
        Ok(Self {
            inner,
            cpu,
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
        self.forward_ordered(x, &[])
    }

    /// [`Self::forward`] with the float order of each row's K-quant products on the CPU
    /// (`orders[i]` for row `i`; missing rows take the default, see [`RowOrder`]).
    pub fn forward_ordered(&self, x: &Tensor, orders: &[RowOrder]) -> Result<Tensor> {
        let x = x.contiguous()?;
        let inner = match (&self.inner, &self.cpu) {
            (_, Some(cpu)) if x.dtype() == DType::F32 => return cpu.forward_ordered(&x, orders),
            (_, Some(cpu)) => {
                let y = cpu.forward_ordered(&x.to_dtype(DType::F32)?, orders)?;
                return Ok(y.to_dtype(x.dtype())?);
            }
            (Some(inner), None) => inner,
            (None, None) => {
                return Err(ModelError::Format("linear layer without weights".into()));
            }
        };
        if self.pad_single_row && x.elem_count() == self.in_features {
            let mut dims = x.dims().to_vec();
            if let Some(last) = dims.last_mut() {
                *last = self.out_features;
            }
            let two = x.reshape((1, self.in_features))?.repeat((2, 1))?;
            return Ok(inner.forward(&two)?.narrow(0, 0, 1)?.reshape(dims)?);
        }
        Ok(inner.forward(&x)?)
    }
}

/// `x · Wᵢᵀ` for each layer of `lins` (all `[.., in]` with the same `in`), as
/// [`QLinear::forward`] computes each, bit for bit. On the CPU, where every layer has a kernel
/// here and `x` is f32, the products run as one job of the compute pool
/// ([`QMatrix::matmul_many`]): one barrier and one quantisation of `x` instead of one per layer.
pub fn forward_many(lins: &[&QLinear], x: &Tensor) -> Result<Vec<Tensor>> {
    let mats: Option<Vec<&QMatrix>> = lins.iter().map(|l| l.cpu.as_ref()).collect();
    let fused = x.device().is_cpu() && x.dtype() == DType::F32 && lins.len() > 1;
    let (Some(mats), true) = (mats, fused) else {
        return lins.iter().map(|l| l.forward(x)).collect();
    };
    let dims = x.dims().to_vec();
    let cols = dims.last().copied().unwrap_or(0);
    let m = x.elem_count().checked_div(cols).unwrap_or(0);
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let ys = QMatrix::matmul_many(&mats, &xs, m, &[])?;
    ys.into_iter()
        .zip(lins)
        .map(|(y, l)| {
            let mut dims = dims.clone();
            if let Some(last) = dims.last_mut() {
                *last = l.out_features;
            }
            Ok(Tensor::from_vec(y, dims, x.device())?)
        })
        .collect()
}

/// The `N` results of [`forward_many`] as an array.
pub fn into_array<const N: usize>(outs: Vec<Tensor>) -> Result<[Tensor; N]> {
    let n = outs.len();
    outs.try_into()
        .map_err(|_| ModelError::Format(format!("{n} products where {N} were expected")))
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
            Some(weight) if x.device().is_cpu() && x.dtype() == DType::F32 => Ok(x
                .apply_op1_no_bwd(&ggml::GgmlRmsNorm {
                    weight,
                    eps: self.eps,
                })?),
            _ => Ok(candle_nn::ops::rms_norm(&x, &self.weight, self.eps)?),
        }
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
        Self::with_factors(base, freq_scale, None, dim, positions, device)
    }

    /// [`Self::new`] with each frequency `i` divided by `factors[i]` (Llama 3's RoPE scaling,
    /// stored in GGUF files as the `rope_freqs.weight` tensor, `dim/2` values).
    pub fn with_factors(
        base: f32,
        freq_scale: f32,
        factors: Option<&[f32]>,
        dim: usize,
        positions: usize,
        device: &Device,
    ) -> Result<Arc<Self>> {
        if dim == 0 || !dim.is_multiple_of(2) {
            return Err(ModelError::Format(format!(
                "RoPE dimension {dim} must be even"
            )));
        }
        let half = dim / 2;
        if let Some(f) = factors
            && f.len() != half
        {
            return Err(ModelError::Format(format!(
                "{} RoPE frequency factors for {half} frequencies",
                f.len()
            )));
        }
        let theta_scale = base.powf(-2.0 / dim as f32);
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            let mut theta = p as f32;
            for i in 0..half {
                let extrap = factors.map_or(theta, |f| theta / f[i]);
                let (s, c) = (freq_scale * extrap).sin_cos();
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
/// from [`RopeTable::rows`]; on the CPU as ggml computes it ([`ggml::ggml_rope`]).
pub fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && x.rank() == 3 {
        return ggml::ggml_rope(&x.contiguous()?, cos, sin, true);
    }
    let x = x.contiguous()?.unsqueeze(0)?;
    Ok(candle_nn::rotary_emb::rope(&x, cos, sin)?.squeeze(0)?)
}

/// Rotates `x` (`[heads, tokens, dim]`) in the original style (adjacent pairs), as Llama's
/// GGUF weights expect; on the CPU as ggml computes it ([`ggml::ggml_rope`]).
pub fn apply_rope_pairs(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && x.rank() == 3 {
        return ggml::ggml_rope(&x.contiguous()?, cos, sin, false);
    }
    let x = x.contiguous()?.unsqueeze(0)?;
    Ok(candle_nn::rotary_emb::rope_i(&x, cos, sin)?.squeeze(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
    }

    #[test]
    fn cpu_rope_equals_candles_rope() -> Result<()> {
        let dev = Device::Cpu;
        let t = RopeTable::new(10_000., 1., 16, 32, &dev)?;
        let (cos, sin) = t.rows(&Tensor::new(&[5u32, 0, 31, 7], &dev)?)?;
        let x = Tensor::randn(0f32, 1., (3, 4, 16), &dev)?;
        let ours = apply_rope(&x, &cos, &sin)?;
        let theirs = candle_nn::rotary_emb::rope(&x.unsqueeze(0)?, &cos, &sin)?.squeeze(0)?;
        assert!(max_diff(&ours, &theirs)? < 1e-6);
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
}
