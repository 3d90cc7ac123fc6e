//! AVX2 forms of the activation quantisers in [`super::act`], with the same results bit for bit
//! (same maximum, same products, round-half-even, NaN to 0 as Rust's float-to-int casts).

use std::arch::x86_64::*;

/// [`super::act::quantize_q8_0`] for one block of 32.
pub(super) fn quantize_q8_0(x: &[f32], q: &mut [i8]) -> f32 {
    if x.len() != 32 || q.len() != 32 {
        return super::act::quantize_q8_0(x, q);
    }
    // SAFETY: this module is compiled only for targets with AVX2; both slices hold 32 values.
    unsafe {
        let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(x.as_ptr().add(8 * i)));
        let amax = max_abs(&v);
        let d = half::f16::from_f32(amax / 127.0).to_f32();
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        store_q(&v, id, q.as_mut_ptr());
        d
    }
}

/// [`super::act::quantize_q8_k`] for one block of 256.
pub(super) fn quantize_q8_k(x: &[f32], q: &mut [i8]) -> f32 {
    if x.len() != 256 || q.len() != 256 {
        return super::act::quantize_q8_k(x, q);
    }
    // SAFETY: as above, with 256 values.
    unsafe {
        let mut m = _mm256_setzero_ps();
        for i in 0..32 {
            m = max_abs_into(_mm256_loadu_ps(x.as_ptr().add(8 * i)), m);
        }
        let amax = hmax(m);
        if amax == 0.0 || amax.is_nan() {
            return super::act::quantize_q8_k(x, q);
        }
        // The first value of that magnitude (its sign sets the scale's).
        let Some(max) = x.iter().copied().find(|v| v.abs() == amax) else {
            return super::act::quantize_q8_k(x, q);
        };
        let iscale = -127.0 / max;
        for (i, q) in q.chunks_exact_mut(32).enumerate() {
            let v: [__m256; 4] =
                std::array::from_fn(|j| _mm256_loadu_ps(x.as_ptr().add(32 * i + 8 * j)));
            store_q(&v, iscale, q.as_mut_ptr());
        }
        1.0 / iscale
    }
}

/// `max(|v|, m)`, keeping `m` where `v` is NaN (as `f32::max`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn max_abs_into(v: __m256, m: __m256) -> __m256 {
    _mm256_max_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0), v), m)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn max_abs(v: &[__m256; 4]) -> f32 {
    let m = v
        .iter()
        .fold(_mm256_setzero_ps(), |m, &v| max_abs_into(v, m));
    hmax(m)
}

/// The largest lane (lanes are never NaN here).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hmax(m: __m256) -> f32 {
    let r = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    let r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_max_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// Writes `clamp(round_half_even(v · scale), -128, 127)` (NaN → 0) for 32 values to `q`.
///
/// # Safety
/// `q` points to 32 writable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store_q(v: &[__m256; 4], scale: f32, q: *mut i8) {
    let s = _mm256_set1_ps(scale);
    let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
    let ints: [__m256i; 4] = std::array::from_fn(|i| {
        let r = _mm256_round_ps(
            _mm256_mul_ps(v[i], s),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        // NaN lanes to 0, as `f32 as i8` gives (before the clamp, which would make them -128).
        let r = _mm256_and_ps(r, _mm256_cmp_ps(r, r, _CMP_ORD_Q));
        let r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
        _mm256_cvtps_epi32(r)
    });
    let packed = _mm256_packs_epi16(
        _mm256_packs_epi32(ints[0], ints[1]),
        _mm256_packs_epi32(ints[2], ints[3]),
    );
    let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    // SAFETY: `q` holds 32 bytes (the caller's contract).
    unsafe { _mm256_storeu_si256(q as *mut __m256i, ordered) };
}

#[cfg(test)]
mod tests {
    use super::super::act;

    /// Values with ties at every rounding step, repeated magnitudes of both signs, zeros, and
    /// the odd NaN and infinity.
    fn block(len: usize, seed: u32, special: bool) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|i| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let v = ((s >> 8) % 2001) as f32 / 4.0 - 250.0;
                match (special, i % 37) {
                    (true, 5) => f32::NAN,
                    (true, 11) => -250.0,
                    (true, 13) => 250.0,
                    (_, 17) => 0.0,
                    _ => v,
                }
            })
            .collect()
    }

    #[test]
    fn avx2_quantisers_equal_the_scalar_ones() {
        for seed in 0..200 {
            for special in [false, true] {
                let x = block(256, seed, special);
                let (mut a, mut b) = ([0i8; 256], [0i8; 256]);
                let (da, db) = (
                    super::quantize_q8_k(&x, &mut a),
                    act::quantize_q8_k(&x, &mut b),
                );
                assert_eq!((da.to_bits(), a), (db.to_bits(), b), "Q8_K seed {seed}");
                for xb in x.chunks_exact(32) {
                    let (mut a, mut b) = ([0i8; 32], [0i8; 32]);
                    let (da, db) = (
                        super::quantize_q8_0(xb, &mut a),
                        act::quantize_q8_0(xb, &mut b),
                    );
                    assert_eq!((da.to_bits(), a), (db.to_bits(), b), "Q8_0 seed {seed}");
                }
            }
        }
        let (mut a, mut b) = ([0i8; 32], [0i8; 32]);
        let inf = [f32::INFINITY; 32];
        assert_eq!(
            super::quantize_q8_0(&inf, &mut a).to_bits(),
            act::quantize_q8_0(&inf, &mut b).to_bits()
        );
        assert_eq!(a, b);
        let zeros = [0f32; 256];
        let (mut a, mut b) = ([1i8; 256], [1i8; 256]);
        assert_eq!(
            super::quantize_q8_k(&zeros, &mut a),
            act::quantize_q8_k(&zeros, &mut b)
        );
        assert_eq!(a, b);
    }
}
