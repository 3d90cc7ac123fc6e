//! SwiGLU (`silu(gate) · up`), the feed-forward activation of the Llama family, computed as
//! ggml's x86 CPU build computes it (`ggml_vec_swiglu_f32`): `x / (1 + exp(-x))` with ggml's
//! vectorised `exp` (a polynomial after range reduction, its AVX2 + FMA form, step for step),
//! times the up projection.

use candle_core::{DType, Tensor};

use crate::Result;

/// The f32 whose bits are `b` (ggml's constants are written as hexadecimal floats).
const fn f(b: u32) -> f32 {
    f32::from_bits(b)
}

/// ggml's `ggml_v_expf` (AVX2 + FMA) for one value: the maximum error is about 1.5 ulp;
/// results above 88.38 are infinite, below -103.97 zero.
pub(crate) fn ggml_expf(x: f32) -> f32 {
    let r = f(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(f(0x3fb8_aa3b), r);
    let n = z - r;
    let b = (-n).mul_add(f(0x35bf_be8e), (-n).mul_add(f(0x3f31_7200), x));
    let e = z.to_bits() << 23;
    let k = f(e.wrapping_add(1f32.to_bits()));
    let u = b * b;
    let j = f(0x3c07_2010)
        .mul_add(b, f(0x3d2b_9f17))
        .mul_add(u, f(0x3e2a_af33).mul_add(b, f(0x3eff_fedb)))
        .mul_add(u, f(0x3f7f_fff6) * b);
    if n.abs() <= 126.0 {
        return j.mul_add(k, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f(g.wrapping_add(0x7f00_0000));
    let s2 = f(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

/// `silu(x) · g` for one value, as ggml's vector loop computes it.
fn swiglu_one(x: f32, g: f32) -> f32 {
    (x / (1.0 + ggml_expf(0.0 - x))) * g
}

/// `silu(gate) · up` element-wise; on the CPU with f32 inputs as ggml computes it, elsewhere
/// with candle's `silu`.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.device().is_cpu()
        && gate.dtype() == DType::F32
        && up.dtype() == DType::F32
        && gate.shape() == up.shape()
    {
        let g = gate.flatten_all()?.to_vec1::<f32>()?;
        let u = up.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; g.len()];
        let row = *gate.dims().last().unwrap_or(&1);
        crate::kernels::par_rows_light(&mut out, row.max(1), |r, dst| {
            let at = r * dst.len();
            for ((d, &x), &y) in dst.iter_mut().zip(&g[at..]).zip(&u[at..]) {
                *d = swiglu_one(x, y);
            }
        });
        return Ok(Tensor::from_vec(out, gate.shape(), gate.device())?);
    }
    Ok((candle_nn::ops::silu(gate)? * up)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn exp_is_within_three_ulps_of_libm() {
        for i in -2000..=2000 {
            let x = i as f32 / 25.0;
            let (ours, exact) = (ggml_expf(x), x.exp());
            let ulp = (exact.to_bits() as i64 - ours.to_bits() as i64).abs();
            assert!(ulp <= 3, "exp({x}): {ours} vs {exact}");
        }
        assert_eq!(ggml_expf(0.0), 1.0);
        assert_eq!(ggml_expf(-200.0), 0.0);
        assert!(ggml_expf(100.0).is_infinite());
        // Past the fast range (|n| > 126, subnormal results) the scaled form still tracks libm
        // to the subnormal spacing.
        let x = -95.0f32;
        assert!((ggml_expf(x) / x.exp() - 1.0).abs() < 1e-3);
    }

    #[test]
    fn swiglu_matches_candle() -> Result<()> {
        let dev = Device::Cpu;
        let gate = Tensor::randn(0f32, 3., (5, 64), &dev)?;
        let up = Tensor::randn(0f32, 1., (5, 64), &dev)?;
        let ours = swiglu(&gate, &up)?;
        let theirs = (candle_nn::ops::silu(&gate)? * &up)?;
        let d = (ours - theirs)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(d < 1e-5, "{d}");
        Ok(())
    }
}
