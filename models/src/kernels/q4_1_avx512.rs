//! The AVX-512 VNNI forms of the Q4_1 tiles ([`super::q4_1`]): one `vpdpbusd` gives a block's
//! integer sums for two rows, two weight rows against one activation row (decode,
//! [`tile_rows`]) or one weight row against two activation rows (prefill, [`tile_pairs`]).
//!
//! Each 256-bit half holds one (weight row, activation row) pair and does, lane for lane, what
//! the AVX2 tile does for it: the same integer sums of four products per lane (`vpdpbusd` of the unsigned nibbles
//! and the signed activation bytes equals `maddubs` then `madd` with ones, which cannot saturate
//! here: |2·15·128| < 2¹⁵), then `acc += (dw · da) · lane` fused and `mins += m · s` fused, so
//! the bits equal [`super::q4_1::dot_scalar`]'s.

use std::arch::x86_64::*;

use super::act::Acts;
use super::avx2::hsum_ps;

/// Bytes per Q4_1 block.
const BLOCK_BYTES: usize = 20;

/// Tiles a tile's prefetches run ahead of the tile being computed.
const PREFETCH_TILES: usize = 2;

/// `[d0, m0, d1, m1]`: the f16 scale and minimum of the blocks at `b0` and `b1` as f32 (one
/// conversion for both; `b0 == b1` for one block).
///
/// # Safety
/// Four bytes are readable at `b0` and at `b1`; the CPU has F16C.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn scales(b0: *const u8, b1: *const u8) -> __m128 {
    // SAFETY: the caller's contract.
    let (s0, s1) = unsafe {
        (
            std::ptr::read_unaligned(b0 as *const i32),
            std::ptr::read_unaligned(b1 as *const i32),
        )
    };
    _mm_cvtph_ps(_mm_set_epi32(0, 0, s1, s0))
}

/// Weight rows `0..W` (`row_bytes` apart from `w`) times activation row `row`, `W` even.
///
/// # Safety
/// `W` rows of `row_bytes` (one row of `acts.k` Q4_1 weights each) lie from `w`, activation row
/// `row` exists in `acts` (Q8_1, with its sums, `acts.k` a multiple of 32), and the CPU has
/// AVX-512 F/BW/DQ/VL with VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn tile_rows<const W: usize>(
    w: *const u8,
    row_bytes: usize,
    acts: &Acts,
    row: usize,
) -> [f32; W] {
    const { assert!(W.is_multiple_of(2)) };
    let nb = acts.blocks_per_row();
    let low = _mm512_set1_epi8(0x0f);
    // Lanes 0..8 take element 0 (d0), lanes 8..16 element 2 (d1).
    let spread = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    let mut acc = [_mm512_setzero_ps(); W];
    let mut mins = [0f32; W];
    for b in 0..nb {
        let i = row * nb + b;
        // SAFETY: block `b` of activation row `row` and of the `W` weight rows lie inside
        // `acts` and `w` (the caller's contract); a prefetch never faults.
        unsafe {
            let a = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                acts.qs.as_ptr().add(i * 32) as *const __m256i
            ));
            let da = _mm512_set1_ps(*acts.d.get_unchecked(i));
            let s = *acts.sums.get_unchecked(i);
            for p in 0..W / 2 {
                let b0 = w.add(2 * p * row_bytes + b * BLOCK_BYTES);
                let b1 = b0.add(row_bytes);
                let ahead = PREFETCH_TILES * W * row_bytes;
                _mm_prefetch::<_MM_HINT_T0>(b0.wrapping_add(ahead).cast());
                _mm_prefetch::<_MM_HINT_T0>(b1.wrapping_add(ahead).cast());
                let dm = scales(b0, b1);
                let t0 = _mm_loadu_si128(b0.add(4) as *const __m128i);
                let t1 = _mm_loadu_si128(b1.add(4) as *const __m128i);
                let raw = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_set_m128i(_mm_srli_epi16(t0, 4), t0)),
                    _mm256_set_m128i(_mm_srli_epi16(t1, 4), t1),
                    1,
                );
                let q = _mm512_and_si512(raw, low);
                let dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, a);
                let dw = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(dm));
                let d = _mm512_mul_ps(dw, da);
                acc[p] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc[p]);
                let m0 = _mm_cvtss_f32(_mm_movehdup_ps(dm));
                let m1 = _mm_cvtss_f32(_mm_shuffle_ps::<0b11>(dm, dm));
                mins[2 * p] = m0.mul_add(s, mins[2 * p]);
                mins[2 * p + 1] = m1.mul_add(s, mins[2 * p + 1]);
            }
        }
    }
    let mut out = [0f32; W];
    for p in 0..W / 2 {
        out[2 * p] = hsum_ps(_mm512_castps512_ps256(acc[p])) + mins[2 * p];
        out[2 * p + 1] = hsum_ps(_mm512_extractf32x8_ps(acc[p], 1)) + mins[2 * p + 1];
    }
    out
}

/// Activation rows `row0..row0 + R` (`R = 2·P`) times the weight row `w`: each block's nibbles
/// are unpacked once, into both halves of a 512-bit vector, and each half meets one activation
/// row of a pair (a prefill tile).
///
/// # Safety
/// `w` holds one row of `acts.k` Q4_1 weights, the rows exist in `acts` (Q8_1, with its sums),
/// `R == 2 * P`, and the CPU has AVX-512 F/BW/DQ/VL with VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn tile_pairs<const P: usize, const R: usize>(
    w: &[u8],
    acts: &Acts,
    row0: usize,
) -> [f32; R] {
    const { assert!(R == 2 * P) };
    let nb = acts.blocks_per_row();
    let low = _mm512_set1_epi8(0x0f);
    let mut acc = [_mm512_setzero_ps(); P];
    let mut mins = [0f32; R];
    for b in 0..nb {
        // SAFETY: block `b` and rows `row0..row0 + R` lie inside `w` and `acts` (the caller's
        // contract).
        unsafe {
            let wb = w.as_ptr().add(b * BLOCK_BYTES);
            let dm = scales(wb, wb);
            let dw = _mm512_broadcastss_ps(dm);
            let m = _mm_cvtss_f32(_mm_movehdup_ps(dm));
            let t = _mm_loadu_si128(wb.add(4) as *const __m128i);
            let q = _mm512_and_si512(
                _mm512_broadcast_i64x4(_mm256_set_m128i(_mm_srli_epi16(t, 4), t)),
                low,
            );
            for (p, acc) in acc.iter_mut().enumerate() {
                let (i0, i1) = ((row0 + 2 * p) * nb + b, (row0 + 2 * p + 1) * nb + b);
                let a = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_loadu_si256(
                        acts.qs.as_ptr().add(i0 * 32) as *const __m256i
                    )),
                    _mm256_loadu_si256(acts.qs.as_ptr().add(i1 * 32) as *const __m256i),
                    1,
                );
                let dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, a);
                let da = _mm512_insertf32x8(
                    _mm512_set1_ps(*acts.d.get_unchecked(i0)),
                    _mm256_set1_ps(*acts.d.get_unchecked(i1)),
                    1,
                );
                let d = _mm512_mul_ps(dw, da);
                *acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), *acc);
                mins[2 * p] = m.mul_add(*acts.sums.get_unchecked(i0), mins[2 * p]);
                mins[2 * p + 1] = m.mul_add(*acts.sums.get_unchecked(i1), mins[2 * p + 1]);
            }
        }
    }
    let mut out = [0f32; R];
    for (p, acc) in acc.iter().enumerate() {
        out[2 * p] = hsum_ps(_mm512_castps512_ps256(*acc)) + mins[2 * p];
        out[2 * p + 1] = hsum_ps(_mm512_extractf32x8_ps(*acc, 1)) + mins[2 * p + 1];
    }
    out
}
