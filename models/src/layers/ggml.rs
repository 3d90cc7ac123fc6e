//! Element-wise operations computed as ggml's CPU backend computes them (GELU through its f16
//! table, RMSNorm with an f64 sum, RoPE with fused multiply-adds, f16 rounding of attention
//! inputs), so that results track llama.cpp's, which is the reference this crate is tested
//! against.

use candle_core::{DType, Tensor};

use crate::Result;

/// `0.5·x·(1 + tanh(√(2/π)·x·(1 + 0.044715·x²)))` in f32, the formula of ggml's table, with
/// `1 + 0.044715·x·x` as one fused multiply-add, as GCC compiles it.
fn gelu_tanh_f32(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (COEF_A * x).mul_add(x, 1.0)).tanh())
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
        let src = &data[start..end];
        let mut out = vec![0f32; src.len()];
        const CHUNK: usize = 4096;
        crate::kernels::par_rows_light(&mut out[..src.len() / CHUNK * CHUNK], CHUNK, |i, dst| {
            for (d, &x) in dst.iter_mut().zip(&src[i * CHUNK..]) {
                *d = ggml_gelu(x);
            }
        });
        for (d, &x) in out.iter_mut().zip(src).skip(src.len() / CHUNK * CHUNK) {
            *d = ggml_gelu(x);
        }
        Ok((candle_core::CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// GELU with the tanh approximation; on the CPU with f32 input, computed exactly as ggml does
/// (inputs at or below -10 give 0, at or above 10 pass through, others go through its table of
/// f16-rounded results for every f16 input), elsewhere with candle's `gelu`.
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

/// ggml's CPU RMSNorm followed by the multiplication by the weight.
pub(crate) struct GgmlRmsNorm<'a> {
    pub(crate) weight: &'a [f32],
    pub(crate) eps: f32,
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
        let src = &data[start..end];
        let mut out = vec![0f32; end - start];
        crate::kernels::par_rows_light(&mut out, n, |row, dst| {
            let src = &src[row * n..(row + 1) * n];
            let sum: f64 = src.iter().map(|&v| f64::from(v * v)).sum();
            let mean = (sum / n as f64) as f32;
            let scale = 1.0 / (mean + self.eps).sqrt();
            for ((d, &v), &w) in dst.iter_mut().zip(src).zip(self.weight) {
                *d = (v * scale) * w;
            }
        });
        Ok((candle_core::CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// RoPE of `x` (`[heads, tokens, dim]`, contiguous f32 on the CPU) with `cos`/`sin` rows
/// (`[tokens, dim/2]`), computed as ggml's CPU build computes it: `x0·cos − x1·sin` and
/// `x0·sin + x1·cos`, each with its first product fused into the addition (GCC contracts them).
/// NeoX style (`neox`) pairs value `i` with `i + dim/2`; the original (GPT-J, Llama) style pairs
/// `2i` with `2i + 1`.
pub(crate) fn ggml_rope(x: &Tensor, cos: &Tensor, sin: &Tensor, neox: bool) -> Result<Tensor> {
    let (_, tokens, dim) = x.dims3()?;
    let half = dim / 2;
    if cos.dims() != [tokens, half] || sin.dims() != [tokens, half] {
        return Err(crate::ModelError::Format(format!(
            "RoPE rows {:?} do not fit {tokens} tokens of {dim}",
            cos.dims()
        )));
    }
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let cs = cos.flatten_all()?.to_vec1::<f32>()?;
    let ss = sin.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; xs.len()];
    crate::kernels::par_rows_light(&mut out, dim, |r, dst| {
        let src = &xs[r * dim..(r + 1) * dim];
        let t = r % tokens;
        let (c, s) = (&cs[t * half..(t + 1) * half], &ss[t * half..(t + 1) * half]);
        let rotate = |x0: f32, x1: f32, i: usize| {
            (x0.mul_add(c[i], -(x1 * s[i])), x0.mul_add(s[i], x1 * c[i]))
        };
        if neox {
            let (lo, hi) = dst.split_at_mut(half);
            for i in 0..half {
                (lo[i], hi[i]) = rotate(src[i], src[i + half], i);
            }
        } else {
            for i in 0..half {
                (dst[2 * i], dst[2 * i + 1]) = rotate(src[2 * i], src[2 * i + 1], i);
            }
        }
    });
    Ok(Tensor::from_vec(out, x.shape(), x.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module};

    #[test]
    fn gelu_follows_the_tanh_formula_within_f16_precision() -> Result<()> {
        let xs: Vec<f32> = (-1200..1200).map(|i| i as f32 / 100.0).collect();
        let x = Tensor::new(xs.as_slice(), &Device::Cpu)?;
        let ours = gelu_tanh(&x)?.to_vec1::<f32>()?;
        let exact = x.gelu()?.to_vec1::<f32>()?;
        for ((x, a), b) in xs.iter().zip(&ours).zip(&exact) {
            assert!(
                (a - b).abs() <= 2e-3 * b.abs().max(1.0),
                "gelu({x}): {a} vs {b}"
            );
        }
        assert_eq!(ggml_gelu(-10.0), 0.0);
        assert_eq!(ggml_gelu(10.5), 10.5);
        Ok(())
    }

    #[test]
    fn rms_norm_matches_candle() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(1f32, 0.1, 64, &dev)?;
        let x = Tensor::randn(0f32, 3., (5, 64), &dev)?;
        let ours = crate::layers::RmsNorm::new(w.clone(), 1e-6)?.forward(&x)?;
        let theirs = candle_nn::RmsNorm::new(w, 1e-6).forward(&x)?;
        let d = (ours - theirs)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(d < 1e-5, "{d}");
        let r = round_to_f16(&Tensor::new(&[1.0f32 + 1e-4, 3.0], &dev)?)?.to_vec1::<f32>()?;
        assert_eq!(r, vec![1.0, 3.0]);
        Ok(())
    }
}
