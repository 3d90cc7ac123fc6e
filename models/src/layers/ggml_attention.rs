//! Attention of short query chunks (decode steps, short prompts) computed as ggml's CPU flash
//! attention computes them for fewer than [`GGML_FA_TILE_Q`] queries: per query row, keys in
//! order, an f32 dot product with f16 keys and queries summed in ggml's AVX2 lane order, an
//! online softmax, and the weighted values accumulated in an f16 vector (rounded after every
//! update), divided by the softmax sum at the end. Rounding the accumulator the same way keeps
//! greedy decoding on llama.cpp's path where its top two tokens are close.

use candle_core::{DType, Device, Tensor};

use crate::Result;

/// Query rows from which ggml switches to its tiled flash attention (f32 queries and
/// accumulators, which [`super::attention`] matches).
pub const GGML_FA_TILE_Q: usize = 64;

/// Lanes of ggml's f16 dot product on AVX2: four accumulators of eight.
const DOT_LANES: usize = 32;

/// ggml's `ggml_vec_dot_f16` on AVX2 + F16C, for values already rounded to f16: 32 running
/// fused sums, folded as its `GGML_F32x8_REDUCE` folds them, then the tail in f64.
pub(crate) fn dot_f16(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let np = n / DOT_LANES * DOT_LANES;
    let mut acc = [0f32; DOT_LANES];
    for (xc, yc) in x[..np]
        .chunks_exact(DOT_LANES)
        .zip(y[..np].chunks_exact(DOT_LANES))
    {
        for ((a, &xv), &yv) in acc.iter_mut().zip(xc).zip(yc) {
            *a = xv.mul_add(yv, *a);
        }
    }
    // sum0 + sum2, sum1 + sum3, then their sum; then the 128-bit halves; then two hadds.
    let mut r = [0f32; 8];
    for (l, r) in r.iter_mut().enumerate() {
        *r = (acc[l] + acc[16 + l]) + (acc[8 + l] + acc[24 + l]);
    }
    let t = [r[0] + r[4], r[1] + r[5], r[2] + r[6], r[3] + r[7]];
    let mut sum = f64::from((t[0] + t[1]) + (t[2] + t[3]));
    for (&xv, &yv) in x[np..n].iter().zip(&y[np..n]) {
        sum += f64::from(xv * yv);
    }
    sum as f32
}

/// `y = f16(x·v + y)` element-wise (ggml's `ggml_vec_mad_f16`; its scalar tail is unfused).
pub(crate) fn mad_f16(y: &mut [f32], x: &[f32], v: f32) {
    let np = y.len() / DOT_LANES * DOT_LANES;
    let (head, tail) = y.split_at_mut(np);
    for (yv, &xv) in head.iter_mut().zip(x) {
        *yv = xv.mul_add(v, *yv);
    }
    round_f16(head);
    for (yv, &xv) in tail.iter_mut().zip(&x[np..]) {
        *yv = f16_round(*yv + xv * v);
    }
}

/// `y = f16(y·v)` element-wise (ggml's `ggml_vec_scale_f16`).
pub(crate) fn scale_f16(y: &mut [f32], v: f32) {
    for yv in y.iter_mut() {
        *yv *= v;
    }
    round_f16(y);
}

fn f16_round(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// Rounds every value to the nearest f16 (ties to even), as F16C's `vcvtps2ph` does.
fn round_f16(y: &mut [f32]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "f16c"))]
    {
        use std::arch::x86_64::{__m128i, _mm256_storeu_ps};
        use std::arch::x86_64::{_mm_loadu_si128, _mm_storeu_si128};
        use std::arch::x86_64::{_mm256_cvtph_ps, _mm256_cvtps_ph, _mm256_loadu_ps};
        let mut chunks = y.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: `c` holds 8 f32; the build targets F16C (checked at start by
            // `kernels::check_cpu`).
            unsafe {
                let h = _mm256_cvtps_ph::<0>(_mm256_loadu_ps(c.as_ptr()));
                let mut tmp = [0u16; 8];
                _mm_storeu_si128(tmp.as_mut_ptr() as *mut __m128i, h);
                let back = _mm256_cvtph_ps(_mm_loadu_si128(tmp.as_ptr() as *const __m128i));
                _mm256_storeu_ps(c.as_mut_ptr(), back);
            }
        }
        for v in chunks.into_remainder() {
            *v = f16_round(*v);
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "f16c")))]
    for v in y.iter_mut() {
        *v = f16_round(*v);
    }
}

/// One query row over the keys `keys` of one KV head (`k`, `v`: `[n_keys, dim]`), written to
/// `out` (`dim` long): with the accumulator in registers where the build has AVX2, FMA and F16C
/// and the head size is 64 or 128 ([`super::ggml_attention_avx2`]), else [`portable_row`]; both
/// give the same bits.
fn row(q: &[f32], k: &[f32], v: &[f32], keys: std::ops::Range<usize>, scale: f32, out: &mut [f32]) {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    if super::ggml_attention_avx2::row(q, k, v, keys.clone(), scale, out).is_some() {
        return;
    }
    portable_row(q, k, v, keys, scale, out);
}

/// [`row`] in portable code: the reference.
pub(super) fn portable_row(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    keys: std::ops::Range<usize>,
    scale: f32,
    out: &mut [f32],
) {
    let dim = q.len();
    let mut sum = 0f32;
    let mut max = f32::NEG_INFINITY;
    out.fill(0.0);
    for j in keys {
        let s = dot_f16(&k[j * dim..(j + 1) * dim], q) * scale;
        let (mut ms, mut vs) = (1f32, 1f32);
        if s > max {
            ms = (max - s).exp();
            max = s;
            scale_f16(out, ms);
        } else {
            vs = (s - max).exp();
        }
        mad_f16(out, &v[j * dim..(j + 1) * dim], vs);
        sum = sum.mul_add(ms, vs);
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for o in out.iter_mut() {
        *o *= inv;
    }
}

/// Grouped-query attention of one sequence as ggml computes it for short query chunks. `q`
/// `[heads, queries, dim]` (rounded to f16) at positions `query_start..`, each score `q · k`
/// multiplied by `scale` in f32 (1 for queries scaled beforehand, as Gemma's are);
/// `k`, `v` `[kv_heads, keys, dim]` (f16, or f32 rounded to f16) holding positions
/// `key_offset..`; with a sliding `window`, a key is visible when `key + window > query`. CPU
/// tensors only.
pub fn ggml_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    query_start: usize,
    key_offset: usize,
    window: Option<usize>,
    scale: f32,
) -> Result<Tensor> {
    let (heads, queries, dim) = q.dims3()?;
    let (kv_heads, n_keys, _) = k.dims3()?;
    super::attention::check_attention(heads, kv_heads, query_start, key_offset, window)?;
    // The cache may hold f16 (see `lm::kv_dtype`); the values are f16 either way.
    let flat = |t: &Tensor| -> Result<Vec<f32>> {
        Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    };
    let (qs, ks, vs) = (flat(q)?, flat(k)?, flat(v)?);
    let group = heads / kv_heads;
    let slab = n_keys * dim;
    let mut out = vec![0f32; heads * queries * dim];
    crate::kernels::par_rows(&mut out, dim, |r, dst| {
        let (h, i) = (r / queries, r % queries);
        let pos = query_start + i;
        // Visible keys, as indices into the cache: not after the query, inside the window.
        let first = window
            .map_or(0, |w| (pos + 1).saturating_sub(w))
            .max(key_offset);
        let keys = first - key_offset..(pos + 1 - key_offset).min(n_keys);
        let kh = h / group;
        row(
            &qs[r * dim..(r + 1) * dim],
            &ks[kh * slab..(kh + 1) * slab],
            &vs[kh * slab..(kh + 1) * slab],
            keys,
            scale,
            dst,
        );
    });
    Ok(Tensor::from_vec(out, (heads, queries, dim), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::attention::naive_attention;

    /// Standard normal values from `seed` (SplitMix64 and Box-Muller), rounded to f16, so each
    /// run checks the same inputs.
    fn rounded(shape: (usize, usize, usize), seed: u64) -> Result<Tensor> {
        let mut state = seed;
        let mut uniform = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let n = shape.0 * shape.1 * shape.2;
        let values: Vec<f32> = (0..n)
            .map(|_| {
                let (u1, u2) = (uniform().max(f64::MIN_POSITIVE), uniform());
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect();
        crate::layers::round_to_f16(&Tensor::from_vec(values, shape, &Device::Cpu)?)
    }

    #[test]
    fn short_chunks_match_exact_attention_within_f16_accumulation() -> Result<()> {
        let keys = 40;
        let cases = [(1, None), (1, Some(8)), (7, None), (7, Some(5))];
        for (seed, (queries, window)) in (1u64..).zip(cases) {
            let q = rounded((4, queries, 64), seed)?;
            let k = rounded((2, keys, 64), seed + 100)?;
            let v = rounded((2, keys, 64), seed + 200)?;
            let start = keys - queries;
            let a = ggml_attention(&q, &k, &v, start, 0, window, 1.0)?;
            let b = naive_attention(&q, &k, &v, start, window, 1.0)?;
            let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            assert!(diff < 4e-3, "queries {queries} window {window:?}: {diff}");
        }
        Ok(())
    }

    #[test]
    fn accumulator_is_rounded_to_f16_after_every_update() {
        // 1 + 2^-12 is not an f16; the running sum must drop it, as ggml's f16 vector does.
        let mut y = vec![1f32; 40];
        mad_f16(&mut y, &[1f32; 40], 2f32.powi(-12));
        assert!(y.iter().all(|&v| v == 1.0), "{y:?}");
        let mut y = vec![1f32; 40];
        scale_f16(&mut y, 1.0 + 2f32.powi(-12));
        assert!(y.iter().all(|&v| v == 1.0));
        // 1 + 2^-10 is one.
        mad_f16(&mut y, &[1f32; 40], 2f32.powi(-10));
        assert!(y.iter().all(|&v| v == 1.0 + 2f32.powi(-10)));
    }

    #[test]
    fn dot_sums_in_ggml_lane_order() {
        // Lane 0 holds 2^24 and then 1 twice (lost in f32, as it is in ggml's accumulators);
        // other lanes' ones survive because they are added after the fold.
        let n = 64;
        let mut x = vec![1f32; n];
        x[0] = 16_777_216.0;
        let y = vec![1f32; n];
        // Lane 0: 2^24 + 1 rounds to 2^24; the other 62 ones are summed exactly.
        assert_eq!(dot_f16(&x, &y), 16_777_216.0 + 62.0);
        // A tail past the 32-lane blocks is added in f64.
        assert_eq!(dot_f16(&[1.0; 35], &[2.0; 35]), 70.0);
    }
}
