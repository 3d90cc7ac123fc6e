//! One head of one sequence's softmax attention as two register-tiled GEMMs on AVX2 + FMA
//! ([`f32_avx2::gemm_tile`]): the keys and values are packed once per head, then each block
//! of queries takes its scores against every key, the softmax of each row, and the weighted
//! sum of the values, while the block's scores stay in L2. The sequence is padded to whole
//! 8-key strips with zero keys and values, whose probabilities are set to zero.

use super::attention::Head;
use super::f32_avx2::{self, PackedF32, STRIP};
use super::math;

/// Queries per block: a multiple of the GEMM's 6-row micro-tile; with 512 keys the block's
/// scores take 96 KiB.
const QUERY_BLOCK: usize = 48;

/// Buffers one thread reuses from head to head.
#[derive(Default)]
pub(super) struct Scratch {
    /// `Kᵀ`, `[d, keys]` in strips.
    kt: PackedF32,
    /// `V`, `[keys, d]` in strips.
    v: PackedF32,
    /// A block's scores, then its unnormalised probabilities, `[QUERY_BLOCK, keys]`.
    scores: Vec<f32>,
}

/// `softmax(q·Kᵀ / √d) · V` for every query of `head`, added into the `head.len` rows of `d`
/// values at `out`, `ldo` apart (zero beforehand).
///
/// # Safety
/// [`f32_avx2::available`] holds, `head.d` is a multiple of [`STRIP`], and `out` is valid for
/// those rows and used by no other thread meanwhile.
pub(super) unsafe fn attend(s: &mut Scratch, head: &Head<'_>, out: *mut f32, ldo: usize) {
    let (len, d) = (head.len, head.d);
    let keys = len.next_multiple_of(STRIP);
    let scale = 1.0 / (d as f32).sqrt();
    let key = |t: usize, part: usize, c: usize| {
        if t < len { head.at(t, part)[c] } else { 0.0 }
    };
    s.kt.fill(d, keys, |c, t| key(t, 1, c));
    s.v.fill(keys, d, |t, c| key(t, 2, c));
    let queries = &head.qkv[head.start * head.stride + head.cols[0]..];
    for q0 in (0..len).step_by(QUERY_BLOCK) {
        let rows = QUERY_BLOCK.min(len - q0);
        let scores = &mut s.scores;
        scores.clear();
        scores.resize(rows * keys, 0.0);
        // SAFETY: `scores` is `rows × keys`; the queries are `rows` rows of `d` values,
        // `head.stride` apart, inside `qkv`; the caller checked the CPU.
        unsafe {
            f32_avx2::gemm_tile(
                &queries[q0 * head.stride..],
                head.stride,
                rows,
                &s.kt,
                0,
                keys,
                scores.as_mut_ptr(),
                keys,
            )
        };
        let mut inv = [0f32; QUERY_BLOCK];
        for (row, inv) in scores.chunks_exact_mut(keys).zip(&mut inv) {
            let (live, pad) = row.split_at_mut(len);
            let max = live.iter().fold(f32::NEG_INFINITY, |m, &p| m.max(p));
            live.iter_mut()
                .for_each(|p| *p = math::exp((*p - max) * scale));
            pad.fill(0.0);
            *inv = 1.0 / math::sum(live);
        }
        // SAFETY: the output rows `q0..q0 + rows` of `d` values at stride `ldo` are the
        // caller's; `scores` is `rows × keys` and `v` is `[keys, d]`.
        unsafe {
            let first = out.add(q0 * ldo);
            f32_avx2::gemm_tile(scores, keys, rows, &s.v, 0, d, first, ldo);
            for (r, inv) in inv.iter().take(rows).enumerate() {
                let row = std::slice::from_raw_parts_mut(first.add(r * ldo), d);
                row.iter_mut().for_each(|x| *x *= inv);
            }
        }
    }
}
