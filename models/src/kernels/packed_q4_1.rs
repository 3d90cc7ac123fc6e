//! Q4_1 weights repacked for the AVX-512 kernels: sixteen weight rows interleaved block by
//! block so that each lane of a vector belongs to one weight row, as [`super::packed`] does for
//! Q4_K. One `vpdpbusd` then multiplies four values of sixteen rows by four broadcast
//! activation bytes, and a block's scales and minimums convert for the sixteen rows at once; no
//! product needs a horizontal sum.
//!
//! The float operations stay those of ggml's `ggml_vec_dot_q4_1_q8_1`, per row: each block's
//! values fall in eight lanes of four products (lane `i` holds values `4i..4i + 4`), each lane
//! accumulates `(dw · da) · Σ` fused, `mins += m · s` fused, and the result is the lanes' sum in
//! [`super::scalar::hsum8`]'s order plus `mins`. Here those eight lanes are eight vectors, one
//! row per lane of each, so every row's bits equal [`super::q4_1::dot_scalar`]'s.

use super::act::Acts;

/// Weight rows per packed group.
pub const GROUP: usize = 16;
/// Bytes of one group's block (the sixteen rows' own blocks take as many): scales and minimums
/// as f16, then four chunks of the rows' nibble bytes, four bytes per row at a time.
const PACK: usize = 320;
const DW: usize = 0;
const MIN: usize = 32;
const QS: usize = 64;
/// Bytes of one GGUF Q4_1 block: f16 scale, f16 minimum, sixteen nibble bytes.
const BLOCK_BYTES: usize = 20;
/// Activation rows per tile: two rows' sixteen accumulators fit the register file beside the
/// unpacked weights.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
const TILE_ACTS: usize = 2;

/// A `[rows, cols]` Q4_1 matrix in groups of [`GROUP`] rows.
#[derive(Debug, Clone)]
pub struct PackedQ4_1 {
    data: Vec<u8>,
    rows: usize,
    blocks: usize,
}

impl PackedQ4_1 {
    /// Repacks `data` (`rows` rows of `cols / 32` Q4_1 blocks); `None` unless the rows come in
    /// whole groups and the sizes agree.
    pub fn pack(data: &[u8], rows: usize, cols: usize) -> Option<Self> {
        let blocks = cols / 32;
        let row_bytes = blocks * BLOCK_BYTES;
        if rows == 0
            || !rows.is_multiple_of(GROUP)
            || !cols.is_multiple_of(32)
            || data.len() != rows * row_bytes
        {
            return None;
        }
        let mut out = vec![0u8; rows / GROUP * blocks * PACK];
        for (i, dst) in out.chunks_exact_mut(PACK).enumerate() {
            let (group, b) = (i / blocks, i % blocks);
            for j in 0..GROUP {
                let at = (group * GROUP + j) * row_bytes + b * BLOCK_BYTES;
                let src = &data[at..at + BLOCK_BYTES];
                dst[DW + 2 * j..DW + 2 * j + 2].copy_from_slice(&src[0..2]);
                dst[MIN + 2 * j..MIN + 2 * j + 2].copy_from_slice(&src[2..4]);
                for k in 0..4 {
                    let to = QS + 64 * k + 4 * j;
                    dst[to..to + 4].copy_from_slice(&src[4 + 4 * k..8 + 4 * k]);
                }
            }
        }
        Some(Self {
            data: out,
            rows,
            blocks,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// `y[i·rows + o] = w_o · acts[i]` for the weight rows `o` of groups `groups`, every
    /// activation row `i`. Does nothing unless `acts` is Q8_1 with this matrix's blocks, `y`
    /// holds `acts.rows × rows` values and the CPU runs the AVX-512 kernels.
    ///
    /// # Safety
    /// No other thread writes the columns of `groups` in `y` meanwhile (`y` may be shared
    /// between threads that multiply other groups).
    pub unsafe fn matmul_groups(&self, acts: &Acts, groups: std::ops::Range<usize>, y: *mut f32) {
        let sized = acts.format == super::ActFormat::Q8_1
            && acts.blocks_per_row() == self.blocks
            && acts.k == self.blocks * 32
            && acts.qs.len() == acts.rows * acts.k
            && acts.d.len() == acts.rows * self.blocks
            && acts.sums.len() == acts.rows * self.blocks
            && groups.end * GROUP <= self.rows;
        if !sized || !super::avx512_runs() {
            return;
        }
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        for group in groups {
            // SAFETY: the group's blocks lie in `data`; the activation rows exist (checked
            // above); the caller owns the group's columns of `y`, `acts.rows × rows` long.
            unsafe {
                let p = self.data.as_ptr().add(group * self.blocks * PACK);
                let out = y.add(group * GROUP);
                let mut r = 0;
                while r + TILE_ACTS <= acts.rows {
                    avx512::tile::<TILE_ACTS>(p, self.blocks, acts, r, out, self.rows);
                    r += TILE_ACTS;
                }
                if r < acts.rows {
                    avx512::tile::<1>(p, self.blocks, acts, r, out, self.rows);
                }
            }
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        let _ = (groups, y);
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod avx512 {
    use std::arch::x86_64::*;

    use super::super::act::Acts;
    use super::{DW, MIN, PACK, QS};

    /// Sixteen weight rows (the group at `p`) times `N` activation rows from `row0`, written to
    /// `out[(row0 + r)·stride..][..16]`.
    ///
    /// # Safety
    /// `p` holds `blocks` packed blocks, rows `row0..row0 + N` exist in `acts` (Q8_1, with its
    /// sums) with `blocks` blocks each, `out` has room for those rows at `stride`, and the CPU
    /// has AVX-512 F, BW, DQ, VL and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn tile<const N: usize>(
        p: *const u8,
        blocks: usize,
        acts: &Acts,
        row0: usize,
        out: *mut f32,
        stride: usize,
    ) {
        let nibble = _mm512_set1_epi8(0x0f);
        // Eight lanes of each activation row, one weight row per vector lane.
        let mut acc = [[_mm512_setzero_ps(); 8]; N];
        let mut mins = [_mm512_setzero_ps(); N];
        for b in 0..blocks {
            // SAFETY: inside the group's blocks and the rows' blocks (the contract).
            unsafe {
                let blk = p.add(b * PACK);
                let dw = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(DW) as *const __m256i));
                let m = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(MIN) as *const __m256i));
                let at: [usize; N] = std::array::from_fn(|r| (row0 + r) * blocks + b);
                let a: [*const u8; N] =
                    std::array::from_fn(|r| acts.qs.as_ptr().add(at[r] * 32).cast());
                let d: [__m512; N] = std::array::from_fn(|r| {
                    _mm512_mul_ps(dw, _mm512_set1_ps(*acts.d.get_unchecked(at[r])))
                });
                for r in 0..N {
                    let s = _mm512_set1_ps(*acts.sums.get_unchecked(at[r]));
                    mins[r] = _mm512_fmadd_ps(m, s, mins[r]);
                }
                for k in 0..4 {
                    let raw = _mm512_loadu_si512(blk.add(QS + 64 * k) as *const _);
                    let lo = _mm512_and_si512(raw, nibble);
                    let hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble);
                    for r in 0..N {
                        let al = std::ptr::read_unaligned(a[r].add(4 * k) as *const i32);
                        let ah = std::ptr::read_unaligned(a[r].add(16 + 4 * k) as *const i32);
                        let sl =
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_set1_epi32(al));
                        let sh =
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, _mm512_set1_epi32(ah));
                        acc[r][k] = _mm512_fmadd_ps(d[r], _mm512_cvtepi32_ps(sl), acc[r][k]);
                        acc[r][k + 4] =
                            _mm512_fmadd_ps(d[r], _mm512_cvtepi32_ps(sh), acc[r][k + 4]);
                    }
                }
            }
        }
        for r in 0..N {
            let l = &acc[r];
            let h = [
                _mm512_add_ps(l[0], l[4]),
                _mm512_add_ps(l[1], l[5]),
                _mm512_add_ps(l[2], l[6]),
                _mm512_add_ps(l[3], l[7]),
            ];
            let sum = _mm512_add_ps(_mm512_add_ps(h[0], h[2]), _mm512_add_ps(h[1], h[3]));
            // SAFETY: row `row0 + r` of `out` has sixteen values from here (the contract).
            unsafe {
                _mm512_storeu_ps(out.add((row0 + r) * stride), _mm512_add_ps(sum, mins[r]));
            }
        }
    }
}
