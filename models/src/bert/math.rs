//! Element-wise math of the CPU encoder written so that loops over slices compile to vector
//! code: branch-free `exp` and `erf`, the activations, and 8-lane dot products.
//!
//! libm's `expf`/`erff` are called one element at a time; in the encoder they cost as much as
//! a layer's attention.

use super::encoder::Activation;

/// `e^x` in f32: `2^n · p(r)` with `x = n·ln2 + r`, `|r| ≤ ln2/2`, and `p` a degree-6
/// polynomial. Inputs are clamped to `[-87, 88]` (results from 1.6e-38 to 1.7e38); the
/// relative error is below 3e-7 (see the tests).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let mut p = 1.0 / 720.0_f32;
    p = p.mul_add(r, 1.0 / 120.0);
    p = p.mul_add(r, 1.0 / 24.0);
    p = p.mul_add(r, 1.0 / 6.0);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    // n is in [-126, 127], so n + 127 is a valid biased exponent.
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// `erf(x)` for f32 as a rational function of `x` (odd numerator, even denominator) on
/// `[-4, 4]`; outside it erf is within 2e-8 of ±1. The absolute error is below 5e-7 (see the tests).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142e-10_f32;
    p = p.mul_add(x2, 2.770_681_4e-8);
    p = p.mul_add(x2, -2.101_024e-6);
    p = p.mul_add(x2, -5.692_506_4e-5);
    p = p.mul_add(x2, -7.349_906_3e-4);
    p = p.mul_add(x2, -2.954_600_2e-3);
    p = p.mul_add(x2, -1.609_603_3e-2);
    let mut q = -1.456_607_2e-5_f32;
    q = q.mul_add(x2, -2.133_740_6e-4);
    q = q.mul_add(x2, -1.682_827e-3);
    q = q.mul_add(x2, -7.373_329_2e-3);
    q = q.mul_add(x2, -1.426_474e-2);
    x * p / q
}

/// Applies `activation` to every value of `xs` in place.
pub(crate) fn activate(activation: Activation, xs: &mut [f32]) {
    match activation {
        // x/2 · (1 + erf(x/√2))
        Activation::GeluErf => xs
            .iter_mut()
            .for_each(|x| *x *= 0.5 * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2))),
        // x/2 · (1 + tanh(u)) = x / (1 + e^(-2u)), u = √(2/π)·(x + 0.044715·x³)
        Activation::GeluTanh => xs.iter_mut().for_each(|x| {
            let u = 0.797_884_6 * *x * (1.0 + 0.044_715 * *x * *x);
            *x /= 1.0 + exp(-2.0 * u);
        }),
        Activation::Relu => xs.iter_mut().for_each(|x| *x = x.max(0.0)),
    }
}

/// `a · b` with eight partial sums, so that the loop vectorises.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ x` with eight partial sums, so that the loop vectorises.
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let x8 = x.chunks_exact(8);
    let tail: f32 = x8.remainder().iter().sum();
    for v in x8 {
        for l in 0..8 {
            acc[l] += v[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a · x`.
#[inline(always)]
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y = x.mul_add(a, *y));
}

/// Layer normalisation of one row in place: `(x − mean) / √(var + eps) · weight + bias`.
pub(crate) fn layer_norm(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((x, w), b) in row.iter_mut().zip(weight).zip(bias) {
        *x = ((*x - mean) * inv).mul_add(*w, *b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_tracks_f64_exp() {
        let mut worst = 0f64;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let want = f64::from(x).exp();
            worst = worst.max((f64::from(exp(x)) - want).abs() / want);
        }
        assert!(worst < 3e-7, "largest relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1e30) >= 0.0 && exp(-1e30) < 1e-37);
        assert!(exp(1e30).is_finite());
    }

    #[test]
    fn erf_tracks_f64_erf() {
        let mut worst = 0f64;
        for i in -600_000..=600_000 {
            let x = i as f32 * 1e-5;
            let want = candle_core::cpu::erf::erf_f64(f64::from(x));
            worst = worst.max((f64::from(erf(x)) - want).abs());
        }
        assert!(worst < 5e-7, "largest error {worst:e}");
        for x in [-1e30f32, -50.0, -4.5, 4.5, 50.0, 1e30] {
            assert!((erf(x) - x.signum()).abs() <= 2e-7, "{x}");
        }
    }

    #[test]
    fn activations_track_their_formulas() {
        for i in -800..=800 {
            let x = i as f32 * 0.01;
            let xf = f64::from(x);
            let erf_gelu = 0.5 * xf * (1.0 + candle_core::cpu::erf::erf_f64(xf / 2f64.sqrt()));
            let u = (2.0 / std::f64::consts::PI).sqrt() * (xf + 0.044715 * xf * xf * xf);
            let tanh_gelu = 0.5 * xf * (1.0 + u.tanh());
            for (act, want) in [
                (Activation::GeluErf, erf_gelu),
                (Activation::GeluTanh, tanh_gelu),
                (Activation::Relu, xf.max(0.0)),
            ] {
                let mut v = [x];
                activate(act, &mut v);
                assert!((f64::from(v[0]) - want).abs() < 2e-6, "{act:?}({x})");
            }
        }
    }

    #[test]
    fn dot_axpy_and_layer_norm_equal_plain_loops() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let plain: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
        assert!((f64::from(dot(&a, &b)) - plain).abs() < 1e-5);
        let mut y = b.clone();
        axpy(2.0, &a, &mut y);
        for ((y, a), b) in y.iter().zip(&a).zip(&b) {
            assert!((y - (2.0 * a + b)).abs() < 1e-6);
        }
        let mut row = a.clone();
        let (w, bias) = (vec![2.0; 37], vec![0.5; 37]);
        layer_norm(&mut row, &w, &bias, 1e-12);
        let mean = row.iter().sum::<f32>() / 37.0;
        let var = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / 37.0;
        assert!(
            (mean - 0.5).abs() < 1e-5 && (var - 4.0).abs() < 1e-4,
            "{mean} {var}"
        );
    }
}
