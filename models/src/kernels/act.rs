//! Activations quantised to 8 bits once per matrix product, exactly as ggml's x86 CPU backend
//! quantises them, so that integer products and scales equal llama.cpp's.

use super::SyncPtr;
use super::format::{ActFormat, RowOrder};

/// Rows from which quantisation is split across the compute pool.
const PARALLEL_ROWS: usize = 4;

/// `rows` activation rows of `k` values each, quantised to signed bytes with one scale per block
/// (32 values for Q8_0 and Q8_1, 256 for Q8_K); for Q8_K also the sum of every 16 quantised
/// values, for Q8_1 each block's `d · Σq`.
#[derive(Debug, Clone)]
pub struct Acts {
    pub format: ActFormat,
    pub k: usize,
    pub rows: usize,
    pub qs: Vec<i8>,
    pub d: Vec<f32>,
    pub bsums: Vec<i32>,
    /// Q8_1 only: per block, the unrounded scale times the sum of its values, rounded to f16
    /// (ggml's `block_q8_1.s`).
    pub sums: Vec<f32>,
    /// The float order of each row's K-quant products (empty: every row [`RowOrder::default`]).
    pub orders: Vec<RowOrder>,
}

impl Acts {
    /// Row `row`'s float order for K-quant products.
    #[inline(always)]
    pub fn order(&self, row: usize) -> RowOrder {
        self.orders.get(row).copied().unwrap_or_default()
    }

    pub fn block_len(&self) -> usize {
        match self.format {
            ActFormat::Q8_0 | ActFormat::Q8_1 => 32,
            ActFormat::Q8K => 256,
        }
    }

    pub fn blocks_per_row(&self) -> usize {
        self.k / self.block_len()
    }

    /// Quantises `x` (`rows × k`, row-major); `k` must be a multiple of the block length.
    pub fn quantize(format: ActFormat, x: &[f32], rows: usize, k: usize) -> Self {
        let block = match format {
            ActFormat::Q8_0 | ActFormat::Q8_1 => 32,
            ActFormat::Q8K => 256,
        };
        debug_assert_eq!(x.len(), rows * k);
        debug_assert_eq!(k % block, 0);
        let mut acts = Self {
            format,
            k,
            rows,
            qs: vec![0; rows * k],
            d: vec![0.0; rows * k / block],
            bsums: match format {
                ActFormat::Q8_0 | ActFormat::Q8_1 => Vec::new(),
                ActFormat::Q8K => vec![0; rows * k / 16],
            },
            sums: match format {
                ActFormat::Q8_1 => vec![0.0; rows * k / block],
                ActFormat::Q8_0 | ActFormat::Q8K => Vec::new(),
            },
            orders: Vec::new(),
        };
        let nb = k / block;
        let groups = k / 16;
        let qs = SyncPtr(acts.qs.as_mut_ptr());
        let ds = SyncPtr(acts.d.as_mut_ptr());
        let sums = SyncPtr(acts.bsums.as_mut_ptr());
        let block_sums = SyncPtr(acts.sums.as_mut_ptr());
        let quantize_rows = |range: std::ops::Range<usize>| {
            for row in range {
                // SAFETY: each row's slices are disjoint from every other row's and lie within
                // the vectors, which outlive the job.
                let (q, d) = unsafe { (qs.slice(row * k, k), ds.slice(row * nb, nb)) };
                let x = &x[row * k..(row + 1) * k];
                for ((xb, qb), d) in x.chunks_exact(block).zip(q.chunks_exact_mut(block)).zip(d) {
                    *d = match format {
                        ActFormat::Q8_0 | ActFormat::Q8_1 => simd::quantize_q8_0(xb, qb),
                        ActFormat::Q8K => simd::quantize_q8_k(xb, qb),
                    };
                }
                if format == ActFormat::Q8_1 {
                    // SAFETY: as above, this row's `nb` sums are its own.
                    let s = unsafe { block_sums.slice(row * nb, nb) };
                    for ((xb, qb), s) in x.chunks_exact(block).zip(q.chunks_exact(block)).zip(s) {
                        *s = q8_1_sum(xb, qb);
                    }
                }
                if format == ActFormat::Q8K {
                    // SAFETY: as above, this row's `groups` sums are its own.
                    let s = unsafe { sums.slice(row * groups, groups) };
                    for (q16, s) in q.chunks_exact(16).zip(s) {
                        *s = q16.iter().map(|&q| i32::from(q)).sum();
                    }
                }
            }
        };
        if rows >= PARALLEL_ROWS {
            candle_core::utils::barrier_pool().execute_chunked(rows, quantize_rows);
        } else {
            quantize_rows(0..rows);
        }
        acts
    }
}

/// The quantisers the build runs: AVX2 where it targets it, else the scalar ones below.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
use super::act_avx2 as simd;
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
mod simd {
    pub(super) use super::{quantize_q8_0, quantize_q8_k};
}

/// One block of 32: `d = amax/127` rounded to f16, `q = round_half_even(x · 127/amax)`.
/// Returns `d` as f32 (the value the dot products use).
pub(super) fn quantize_q8_0(x: &[f32], q: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = half::f16::from_f32(amax / 127.0).to_f32();
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * id).round_ties_even().clamp(-128.0, 127.0) as i8;
    }
    d
}

/// ggml's `block_q8_1.s` of a block quantised by [`quantize_q8_0`]: the unrounded scale
/// `amax/127` times the sum of the quantised values, rounded to f16.
fn q8_1_sum(x: &[f32], q: &[i8]) -> f32 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let sum: i32 = q.iter().map(|&v| i32::from(v)).sum();
    half::f16::from_f32(amax / 127.0 * sum as f32).to_f32()
}

/// One block of 256: the value of largest magnitude `max` (first one on ties) sets
/// `iscale = -127/max`, `q = min(127, round_half_even(x · iscale))`, `d = 1/iscale`.
pub(super) fn quantize_q8_k(x: &[f32], q: &mut [i8]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        q.fill(0);
        return 0.0;
    }
    let iscale = -127.0 / max;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * iscale).round_ties_even().clamp(-128.0, 127.0) as i8;
    }
    1.0 / iscale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_matches_ggml_rules() {
        let mut x: Vec<f32> = (0..32).map(|i| (i as f32 - 15.5) * 0.25).collect();
        x[3] = -5.0; // amax
        x[5] = 0.25; // · 127/5 = 6.35 → 6
        x[6] = 2.5 * 5.0 / 127.0; // ≈ 2.5 → a tie, rounded to even
        let a = Acts::quantize(ActFormat::Q8_0, &x, 1, 32);
        assert_eq!(a.qs[3], -127);
        assert_eq!(a.d[0], half::f16::from_f32(5.0 / 127.0).to_f32());
        assert_eq!(a.qs[5], 6);
        let scaled = x[6] * (127.0 / 5.0);
        assert_eq!(i32::from(a.qs[6]), scaled.round_ties_even() as i32);
        let zero = Acts::quantize(ActFormat::Q8_0, &[0.0; 32], 1, 32);
        assert!(zero.qs.iter().all(|&q| q == 0) && zero.d[0] == 0.0);
    }

    #[test]
    fn q8_k_uses_signed_max_and_block_sums() {
        let mut x: Vec<f32> = (0..256)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        x[10] = 3.0;
        let a = Acts::quantize(ActFormat::Q8K, &x, 1, 256);
        // iscale = -127/3: the largest value maps to -127 and d is negative.
        assert_eq!(a.qs[10], -127);
        assert!(a.d[0] < 0.0);
        for (g, &s) in a.bsums.iter().enumerate() {
            let want: i32 = a.qs[g * 16..g * 16 + 16]
                .iter()
                .map(|&q| i32::from(q))
                .sum();
            assert_eq!(s, want);
        }
        for (q, v) in a.qs.iter().zip(&x) {
            assert!((f32::from(*q) * a.d[0] - v).abs() <= a.d[0].abs() * 0.5 + 1e-6);
        }
    }
}
