//! [`super::ggml_attention`]'s per-query row with its accumulator held in registers, on AVX2,
//! FMA and F16C, for head sizes of 64 and 128: the same operations as the portable row in the
//! same order (the dot product's 32 lanes as four vectors folded as ggml folds them, the
//! online softmax, the weighted values fused in and rounded to f16 after every key), so the
//! bits are equal; only the loads and stores of the accumulator between keys are gone.

use std::arch::x86_64::*;

/// Query `q` (`8·V` values) over the keys `keys` of `k`, `v` (`[n_keys, 8·V]`, f16 values),
/// written to `out` (`8·V` long); `None` (nothing written) for other head sizes.
pub(super) fn row(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    keys: std::ops::Range<usize>,
    scale: f32,
    out: &mut [f32],
) -> Option<()> {
    let dim = q.len();
    if out.len() != dim || k.len() < keys.end * dim || v.len() < keys.end * dim {
        return None;
    }
    // SAFETY: the sizes were checked above; this module is compiled only for targets with
    // AVX2, FMA and F16C.
    unsafe {
        match dim {
            64 => row_v::<8>(q, k, v, keys, scale, out),
            128 => row_v::<16>(q, k, v, keys, scale, out),
            _ => return None,
        }
    }
    Some(())
}

/// Rounds each lane to the nearest f16 (ties to even) and back.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn round_f16(x: __m256) -> __m256 {
    _mm256_cvtph_ps(_mm256_cvtps_ph::<0>(x))
}

/// # Safety
/// `q` and `out` hold `8·V` values, `k` and `v` `keys.end` rows of them; the CPU has AVX2, FMA
/// and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn row_v<const V: usize>(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    keys: std::ops::Range<usize>,
    scale: f32,
    out: &mut [f32],
) {
    const { assert!(V.is_multiple_of(4)) };
    let dim = 8 * V;
    // SAFETY: `q` holds `8·V` values (the contract).
    let qv: [__m256; V] =
        std::array::from_fn(|i| unsafe { _mm256_loadu_ps(q.as_ptr().add(8 * i)) });
    let mut o = [_mm256_setzero_ps(); V];
    let mut sum = 0f32;
    let mut max = f32::NEG_INFINITY;
    for j in keys {
        // SAFETY: row `j < keys.end` of `k` and `v` holds `dim` values (the contract).
        let (kr, vr) = unsafe { (k.as_ptr().add(j * dim), v.as_ptr().add(j * dim)) };
        // `dot_f16`: lane `l` of 32 sums elements `l`, `32 + l`, …; vector `i` holds lanes
        // `8·(i % 4)..` of block `i / 4`.
        let mut acc = [_mm256_setzero_ps(); 4];
        for (i, &qi) in qv.iter().enumerate() {
            // SAFETY: inside row `j` of `k`.
            let kv = unsafe { _mm256_loadu_ps(kr.add(8 * i)) };
            acc[i % 4] = _mm256_fmadd_ps(kv, qi, acc[i % 4]);
        }
        let r = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
        let t = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps::<1>(r));
        let mut lanes = [0f32; 4];
        // SAFETY: four values.
        unsafe { _mm_storeu_ps(lanes.as_mut_ptr(), t) };
        let dot = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        let s = dot * scale;
        let (mut ms, mut vs) = (1f32, 1f32);
        if s > max {
            ms = (max - s).exp();
            max = s;
            let m = _mm256_set1_ps(ms);
            for oi in o.iter_mut() {
                *oi = round_f16(_mm256_mul_ps(*oi, m));
            }
        } else {
            vs = (s - max).exp();
        }
        let w = _mm256_set1_ps(vs);
        for (i, oi) in o.iter_mut().enumerate() {
            // SAFETY: inside row `j` of `v`.
            let vv = unsafe { _mm256_loadu_ps(vr.add(8 * i)) };
            *oi = round_f16(_mm256_fmadd_ps(vv, w, *oi));
        }
        sum = sum.mul_add(ms, vs);
    }
    let inv = _mm256_set1_ps(if sum == 0.0 { 0.0 } else { 1.0 / sum });
    for (i, oi) in o.iter().enumerate() {
        // SAFETY: `out` holds `8·V` values (the contract).
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * i), _mm256_mul_ps(*oi, inv)) };
    }
}

#[cfg(test)]
mod tests {
    /// Values rounded to f16, from a fixed sequence.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let x = ((s >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 6.0;
                half::f16::from_f32(x).to_f32()
            })
            .collect()
    }

    #[test]
    fn equals_the_portable_row_bit_for_bit() {
        for (dim, seed) in [(64usize, 1u64), (128, 2), (64, 3)] {
            let n_keys = 97;
            let q = values(dim, seed);
            let k = values(n_keys * dim, seed + 10);
            let v = values(n_keys * dim, seed + 20);
            for (keys, scale) in [
                (0..n_keys, 0.125f32),
                (5..40, 1.0),
                (0..1, 0.3),
                (3..3, 0.5),
            ] {
                let mut want = vec![f32::NAN; dim];
                super::super::ggml_attention::portable_row(
                    &q,
                    &k,
                    &v,
                    keys.clone(),
                    scale,
                    &mut want,
                );
                let mut got = vec![f32::NAN; dim];
                assert_eq!(
                    super::row(&q, &k, &v, keys.clone(), scale, &mut got),
                    Some(())
                );
                assert_eq!(
                    got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    "dim {dim}, keys {keys:?}"
                );
            }
        }
        let mut out = vec![0f32; 96];
        assert_eq!(
            super::row(&[0.0; 96], &[0.0; 96], &[0.0; 96], 0..1, 1.0, &mut out),
            None
        );
    }
}
