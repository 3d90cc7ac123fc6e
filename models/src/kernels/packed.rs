//! Q4_K weights repacked for the SIMD kernels: sixteen weight rows interleaved block by block so
//! that each lane of a vector belongs to one weight row. A product then needs no horizontal
//! sums: under the AVX-512 set `vpdpbusd` multiplies four values of sixteen rows by four
//! broadcast activations at once (llama.cpp repacks its Q4_K the same way for the same
//! reason); under the AVX2 set ([`super::packed_avx2`]) `vpmaddubsw` does it for eight rows,
//! each half of a group in turn. Integer sums are exact, and
//! every row gets the float operations of [`super::scalar`] in the same order, so the results
//! are the other kernels' bit for bit.

use super::Kernels;
use super::act::Acts;
use super::format::k_scale_min;

/// Weight rows per packed group.
pub const GROUP: usize = 16;
/// Bytes of one group's block (the sixteen rows' own blocks take 2304): super-scales and
/// super-mins as f16, sub-block scales and mins as bytes, then the 4-bit values four bytes
/// per row at a time.
pub(super) const PACK: usize = 2368;
pub(super) const DW: usize = 0;
pub(super) const DMIN: usize = 32;
pub(super) const SC: usize = 64;
pub(super) const MINS: usize = 192;
pub(super) const QS: usize = 320;
/// Activation rows per tile.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
const TILE_ACTS: usize = 4;

/// A `[rows, cols]` Q4_K matrix in groups of [`GROUP`] rows.
#[derive(Debug, Clone)]
pub struct PackedQ4K {
    data: Vec<u8>,
    kernels: Kernels,
    rows: usize,
    blocks: usize,
}

impl PackedQ4K {
    /// Repacks `data` (`rows` rows of `cols / 256` Q4_K blocks) for `kernels`; `None` for the
    /// portable kernels, or unless the rows come in whole groups and the sizes agree.
    pub fn pack(kernels: Kernels, data: &[u8], rows: usize, cols: usize) -> Option<Self> {
        let blocks = cols / 256;
        let row_bytes = blocks * 144;
        if kernels == Kernels::Portable
            || rows == 0
            || !rows.is_multiple_of(GROUP)
            || !cols.is_multiple_of(256)
            || data.len() != rows * row_bytes
        {
            return None;
        }
        let mut out = vec![0u8; rows / GROUP * blocks * PACK];
        for (i, dst) in out.chunks_exact_mut(PACK).enumerate() {
            let (group, b) = (i / blocks, i % blocks);
            for j in 0..GROUP {
                let at = (group * GROUP + j) * row_bytes + b * 144;
                let src = &data[at..at + 144];
                put(dst, DW + 2 * j, &src[0..2]);
                put(dst, DMIN + 2 * j, &src[2..4]);
                for c in 0..8 {
                    let (scale, min) = k_scale_min(&src[4..16], c);
                    dst[SC + 16 * c + j] = scale;
                    dst[MINS + 16 * c + j] = min;
                }
                for s in 0..4 {
                    for g in 0..8 {
                        let q = 16 + 32 * s + 4 * g;
                        put(dst, QS + 512 * s + 64 * g + 4 * j, &src[q..q + 4]);
                    }
                }
            }
        }
        Some(Self {
            data: out,
            kernels,
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
    /// activation row `i`. Does nothing unless `acts` has this matrix's blocks, `y` holds
    /// `acts.rows × rows` values and the CPU runs the kernels it was packed for.
    ///
    /// # Safety
    /// No other thread writes the columns of `groups` in `y` meanwhile (`y` may be shared
    /// between threads that multiply other groups).
    pub unsafe fn matmul_groups(&self, acts: &Acts, groups: std::ops::Range<usize>, y: *mut f32) {
        let sized = acts.format == super::ActFormat::Q8K
            && acts.blocks_per_row() == self.blocks
            && acts.qs.len() == acts.rows * acts.k
            && acts.d.len() == acts.rows * self.blocks
            && acts.bsums.len() == acts.qs.len() / 16
            && groups.end * GROUP <= self.rows;
        if !sized || !self.kernels.runs() {
            return;
        }
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        if self.kernels == Kernels::Avx2 {
            // SAFETY: each group's blocks lie in `data` and its columns in `y` (checked above,
            // and the contract); the activation rows exist, and this code is compiled only for
            // targets with AVX2, FMA (and F16C with them).
            unsafe {
                super::half_groups::walk(groups, acts.rows, |group| super::packed_avx2::Tile {
                    p: self.data.as_ptr().add(group * self.blocks * PACK),
                    blocks: self.blocks,
                    acts,
                    out: y.add(group * GROUP),
                    stride: self.rows,
                })
            };
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
                while r < acts.rows {
                    match acts.rows - r {
                        1 => avx512::tile::<1>(p, self.blocks, acts, r, out, self.rows),
                        2 => avx512::tile::<2>(p, self.blocks, acts, r, out, self.rows),
                        3 => avx512::tile::<3>(p, self.blocks, acts, r, out, self.rows),
                        _ => avx512::tile::<TILE_ACTS>(p, self.blocks, acts, r, out, self.rows),
                    }
                    r += TILE_ACTS;
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

fn put(dst: &mut [u8], at: usize, bytes: &[u8]) {
    dst[at..at + bytes.len()].copy_from_slice(bytes);
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod avx512 {
    use std::arch::x86_64::*;

    use super::super::act::Acts;
    use super::{DMIN, DW, MINS, PACK, QS, SC};

    /// Sixteen weight rows (the group at `p`) times `N` activation rows from `row0`, written to
    /// `out[(row0 + r)·stride..][..16]`.
    ///
    /// # Safety
    /// `p` holds `blocks` packed blocks, rows `row0..row0 + N` exist in `acts` with `blocks`
    /// blocks each, `out` has room for those rows at `stride`, and the CPU has AVX-512 F, BW,
    /// DQ, VL and VNNI.
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
        // The two running sums of each activation row, one weight row per lane.
        let mut main = [_mm512_setzero_ps(); N];
        let mut mins = [_mm512_setzero_ps(); N];
        let groups: [bool; N] = std::array::from_fn(|r| acts.order(row0 + r).q4k_groups);
        for b in 0..blocks {
            // SAFETY: inside the group's blocks and the rows' blocks.
            let blk = unsafe { p.add(b * PACK) };
            // SAFETY: inside the packed group, the rows and `out` (the contract).
            let dw = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(blk.add(DW) as *const __m256i) });
            let dmin =
                // SAFETY: inside the packed group, the rows and `out` (the contract).
                _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(blk.add(DMIN) as *const __m256i) });
            let at: [usize; N] = std::array::from_fn(|r| (row0 + r) * blocks + b);
            let a: [*const i8; N] =
                // SAFETY: inside the packed group, the rows and `out` (the contract).
                std::array::from_fn(|r| unsafe { acts.qs.as_ptr().add(at[r] * 256) });
            let da: [f32; N] = std::array::from_fn(|r| acts.d[at[r]]);
            // Whole-block sums for rows in the single-row order.
            let mut sumi_all = [_mm512_setzero_si512(); N];
            let mut corr_all = [_mm512_setzero_si512(); N];
            for s in 0..4 {
                let mut lo_sums = [_mm512_setzero_si512(); N];
                let mut hi_sums = [_mm512_setzero_si512(); N];
                for g in 0..8 {
                    let raw =
                        // SAFETY: inside the packed group, the rows and `out` (the contract).
                        unsafe { _mm512_loadu_si512(blk.add(QS + 512 * s + 64 * g) as *const _) };
                    let lo = _mm512_and_si512(raw, nibble);
                    let hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble);
                    for r in 0..N {
                        // SAFETY: inside the packed group, the rows and `out` (the contract).
                        let (al, ah) = unsafe {
                            (
                                std::ptr::read_unaligned(a[r].add(64 * s + 4 * g) as *const i32),
                                std::ptr::read_unaligned(
                                    a[r].add(64 * s + 32 + 4 * g) as *const i32
                                ),
                            )
                        };
                        lo_sums[r] = _mm512_dpbusd_epi32(lo_sums[r], lo, _mm512_set1_epi32(al));
                        hi_sums[r] = _mm512_dpbusd_epi32(hi_sums[r], hi, _mm512_set1_epi32(ah));
                    }
                }
                // SAFETY: inside the packed group, the rows and `out` (the contract).
                let sc_lo = _mm512_cvtepu8_epi32(unsafe {
                    _mm_loadu_si128(blk.add(SC + 32 * s) as *const __m128i)
                });
                // SAFETY: inside the packed group, the rows and `out` (the contract).
                let sc_hi = _mm512_cvtepu8_epi32(unsafe {
                    _mm_loadu_si128(blk.add(SC + 32 * s + 16) as *const __m128i)
                });
                // The mins of sub-blocks 2s and 2s+1 as i16 pairs, one row per lane.
                // SAFETY: inside the packed group, the rows and `out` (the contract).
                let min_pairs = unsafe {
                    let lo = _mm512_cvtepu8_epi32(_mm_loadu_si128(
                        blk.add(MINS + 32 * s) as *const __m128i
                    ));
                    let hi = _mm512_cvtepu8_epi32(_mm_loadu_si128(
                        blk.add(MINS + 32 * s + 16) as *const __m128i
                    ));
                    _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16))
                };
                for r in 0..N {
                    let sumi = _mm512_add_epi32(
                        _mm512_mullo_epi32(lo_sums[r], sc_lo),
                        _mm512_mullo_epi32(hi_sums[r], sc_hi),
                    );
                    // Σ min·bsum of the part's two sub-blocks: i16 pairs times i16 pairs.
                    let bs = &acts.bsums[at[r] * 16 + 4 * s..at[r] * 16 + 4 * s + 4];
                    let pair =
                        u32::from((bs[0] + bs[1]) as u16) | u32::from((bs[2] + bs[3]) as u16) << 16;
                    let corr = _mm512_madd_epi16(min_pairs, _mm512_set1_epi32(pair as i32));
                    if groups[r] {
                        let d = _mm512_mul_ps(_mm512_set1_ps(da[r]), dw);
                        let m = _mm512_mul_ps(_mm512_set1_ps(da[r]), dmin);
                        main[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), d, main[r]);
                        mins[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(corr), m, mins[r]);
                    } else {
                        sumi_all[r] = _mm512_add_epi32(sumi_all[r], sumi);
                        corr_all[r] = _mm512_add_epi32(corr_all[r], corr);
                    }
                }
            }
            for r in 0..N {
                if !groups[r] {
                    let d = _mm512_mul_ps(_mm512_set1_ps(da[r]), dw);
                    let m = _mm512_mul_ps(_mm512_set1_ps(da[r]), dmin);
                    main[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi_all[r]), d, main[r]);
                    mins[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(corr_all[r]), m, mins[r]);
                }
            }
        }
        for r in 0..N {
            // SAFETY: inside the packed group, the rows and `out` (the contract).
            unsafe {
                _mm512_storeu_ps(
                    out.add((row0 + r) * stride),
                    _mm512_sub_ps(main[r], mins[r]),
                );
            }
        }
    }
}
