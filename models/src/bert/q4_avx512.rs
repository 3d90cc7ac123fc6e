//! The AVX-512 VNNI form of [`super::q4_avx2`]'s micro-tile, used where nfai's AVX-512 kernel
//! set runs: two of its 8-column strips side by side in one 512-bit vector, so that one
//! `vpdpbusd` adds four inputs' products of sixteen columns into 32-bit sums (the AVX2 tile
//! needs `vpmaddubsw` and a 16-bit add for eight columns), up to [`ROWS`] rows per tile in the
//! larger register file. The integer sums are the AVX2 tile's and every column gets its float
//! operations in the same order, so the results are its bits.

use std::arch::x86_64::*;

use super::q4_avx2::{PACKED_BLOCK, QK, STRIP, Tile};
use crate::kernels::{Kernels, kernels};

/// Rows of a micro-tile: eight 32-bit sums and eight f32 accumulators of sixteen columns, with
/// the weights, a broadcast and the scales beside them, fit the 32 vector registers.
pub(super) const ROWS: usize = 8;

/// Whether the encoders' 8-bit tiles take this form: the AVX-512 kernel set is in use (the
/// CPU has AVX-512 F, BW, DQ, VL and VNNI; see [`kernels`]).
pub(super) fn enabled() -> bool {
    kernels() == Kernels::Avx512
}

/// Calls [`micro`] for `nr` rows (1..=[`ROWS`]).
///
/// # Safety
/// As [`micro`].
pub(super) unsafe fn micro_dispatch(nr: usize, t: &Tile, second: *const u8) {
    // SAFETY: in every arm the caller upholds `micro`'s contract (ours).
    unsafe {
        match nr {
            1 => micro::<1>(t, second),
            2 => micro::<2>(t, second),
            3 => micro::<3>(t, second),
            4 => micro::<4>(t, second),
            5 => micro::<5>(t, second),
            6 => micro::<6>(t, second),
            7 => micro::<7>(t, second),
            8 => micro::<8>(t, second),
            _ => unreachable!("micro-tile of {nr} rows"),
        }
    }
}

/// `R` rows × two strips (`t.b`, then `second`, the next strip) of `c` += `a · b` over `t.nb`
/// blocks, accumulators in registers.
///
/// # Safety
/// [`enabled`] holds (the CPU has AVX-512 F, BW, DQ, VL and VNNI); `t.q` holds `R` rows of
/// `32 t.nb` values (`t.scale`, `t.offset` `R` rows of `t.nb`), `t.b` and `second` one strip
/// of `t.nb` packed blocks each, and `t.c` `R` rows of 16 floats, at their strides.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")]
unsafe fn micro<const R: usize>(t: &Tile, second: *const u8) {
    // SAFETY: every pointer stays inside the extents the caller guarantees.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); R];
        for blk in 0..t.nb {
            let (lo, hi) = (t.b.add(blk * PACKED_BLOCK), second.add(blk * PACKED_BLOCK));
            let mut sums = [_mm512_setzero_si512(); R];
            for quad in 0..QK / 4 {
                let w = _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_loadu_si256(lo.add(quad * 32).cast())),
                    _mm256_loadu_si256(hi.add(quad * 32).cast()),
                );
                for (r, sum) in sums.iter_mut().enumerate() {
                    let p = t.q.add(r * t.lda + blk * QK + quad * 4);
                    let a = _mm512_set1_epi32(p.cast::<i32>().read_unaligned());
                    *sum = _mm512_dpbusd_epi32(*sum, w, a);
                }
            }
            let dw = _mm512_insertf32x8::<1>(
                _mm512_castps256_ps512(_mm256_loadu_ps(lo.add(QK * STRIP).cast())),
                _mm256_loadu_ps(hi.add(QK * STRIP).cast()),
            );
            for (r, (v, sum)) in acc.iter_mut().zip(&sums).enumerate() {
                let d = _mm512_set1_ps(*t.scale.add(r * t.nb + blk));
                let o = _mm512_set1_ps(*t.offset.add(r * t.nb + blk));
                let dot = _mm512_cvtepi32_ps(*sum);
                *v = _mm512_fmadd_ps(_mm512_fmadd_ps(dot, d, o), dw, *v);
            }
        }
        for (r, v) in acc.iter().enumerate() {
            let p = t.c.add(r * t.ldc);
            _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), *v));
        }
    }
}
