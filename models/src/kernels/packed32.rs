//! Weights of the 32-value block formats Q4_1 and Q5_0 repacked for the SIMD kernels: sixteen
//! weight rows interleaved block by block so that each lane of a vector belongs to one weight
//! row, as [`super::packed`] does for Q4_K. Under the AVX-512 set one `vpdpbusd` multiplies
//! four values of sixteen rows by four broadcast activation bytes; under the AVX2 set
//! ([`super::packed32_avx2`]) `vpmaddubsw` and `vpmaddwd` do the same for eight rows, each
//! half of a group in turn. A block's scales convert for all its rows at once, no product needs
//! a horizontal sum, and a matrix is read as one stream.
//!
//! The float operations stay those of ggml's `ggml_vec_dot_q4_1_q8_1` and
//! `ggml_vec_dot_q5_0_q8_0`, per row: each block's values fall in eight lanes of four products
//! (lane `i` holds values `4i..4i + 4`), each lane accumulates `(dw · da) · Σ` fused (Q4_1 also
//! `mins += m · s` fused), and the result is the lanes' sum in [`super::scalar::hsum8`]'s order
//! (plus `mins`). Here those eight lanes are eight vectors, one row per lane of each, so every
//! row's bits equal [`super::scalar`]'s. Q5_0's values (−16..16) enter `vpdpbusd` as unsigned
//! bytes (value + 16), and each lane's sum starts at `−16 · Σ` of its four activation bytes,
//! which keeps the integer sums exact.
//!
//! Q5_0's fifth bits are stored in the form the kernel set adds them fastest: for AVX-512,
//! one 64-bit mask per nibble vector (a masked byte add); for AVX2, one byte per nibble byte
//! position whose eight bits are that position's fifth bits in the eight nibble vectors (two
//! shifts and a mask per vector).

use super::Kernels;
use super::act::Acts;
use super::format::WeightFormat;

/// Weight rows per packed group.
pub const GROUP: usize = 16;
/// Where a packed block's parts start, in bytes: the sixteen f16 scales at 0, then Q4_1's
/// sixteen f16 minimums or Q5_0's 64 bytes of high bits (see the module's notes), then four
/// vectors of the rows' nibble bytes, four bytes per row at a time.
pub(super) const DW: usize = 0;
pub(super) const EXTRA: usize = 32;
pub(super) const Q4_1_QS: usize = 64;
pub(super) const Q5_0_QS: usize = 96;
/// Activation rows per tile: two rows' sixteen accumulators fit the register file beside the
/// unpacked weights.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
const TILE_ACTS: usize = 2;

/// A `[rows, cols]` Q4_1 or Q5_0 matrix in groups of [`GROUP`] rows.
#[derive(Debug, Clone)]
pub struct Packed32 {
    data: Vec<u8>,
    format: WeightFormat,
    kernels: Kernels,
    rows: usize,
    blocks: usize,
}

impl Packed32 {
    /// Repacks `data` (`rows` rows of `cols / 32` blocks of `format`) for `kernels`; `None`
    /// for other formats than Q4_1 and Q5_0, for the portable kernels, or unless the rows come
    /// in whole groups and the sizes agree.
    pub fn pack(
        kernels: Kernels,
        format: WeightFormat,
        data: &[u8],
        rows: usize,
        cols: usize,
    ) -> Option<Self> {
        if !matches!(format, WeightFormat::Q4_1 | WeightFormat::Q5_0)
            || kernels == Kernels::Portable
        {
            return None;
        }
        let blocks = cols / 32;
        let block_bytes = format.block_bytes();
        let row_bytes = blocks * block_bytes;
        if rows == 0
            || !rows.is_multiple_of(GROUP)
            || !cols.is_multiple_of(32)
            || data.len() != rows * row_bytes
        {
            return None;
        }
        let pack = GROUP * block_bytes;
        let mut out = vec![0u8; rows / GROUP * blocks * pack];
        for (i, dst) in out.chunks_exact_mut(pack).enumerate() {
            let (group, b) = (i / blocks, i % blocks);
            for j in 0..GROUP {
                let at = (group * GROUP + j) * row_bytes + b * block_bytes;
                let src = &data[at..at + block_bytes];
                dst[DW + 2 * j..DW + 2 * j + 2].copy_from_slice(&src[0..2]);
                let (nibbles, qs) = if format == WeightFormat::Q4_1 {
                    dst[EXTRA + 2 * j..EXTRA + 2 * j + 2].copy_from_slice(&src[2..4]);
                    (&src[4..20], Q4_1_QS)
                } else {
                    let qh = u32::from_le_bytes([src[2], src[3], src[4], src[5]]);
                    let high = &mut dst[EXTRA..EXTRA + 64];
                    if kernels == Kernels::Avx512 {
                        put_high_masks(high, j, qh);
                    } else {
                        put_high_bytes(high, j, qh);
                    }
                    (&src[6..22], Q5_0_QS)
                };
                for k in 0..4 {
                    let to = qs + 64 * k + 4 * j;
                    dst[to..to + 4].copy_from_slice(&nibbles[4 * k..4 * k + 4]);
                }
            }
        }
        Some(Self {
            data: out,
            format,
            kernels,
            rows,
            blocks,
        })
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// What [`Self::matmul_groups`] needs besides `acts`, computed once per product: for Q5_0
    /// each lane's starting sum, −16 times its four activation bytes (eight per row and
    /// block); nothing for Q4_1.
    pub fn offsets(&self, acts: &Acts) -> Vec<i32> {
        if self.format != WeightFormat::Q5_0 {
            return Vec::new();
        }
        acts.qs
            .chunks_exact(4)
            .map(|a| -16 * (i32::from(a[0]) + i32::from(a[1]) + i32::from(a[2]) + i32::from(a[3])))
            .collect()
    }

    /// `y[i·rows + o] = w_o · acts[i]` for the weight rows `o` of groups `groups`, every
    /// activation row `i`, with `offsets` from [`Self::offsets`] for these `acts`. Does nothing
    /// unless `acts` is in this format's activation format with this matrix's blocks, `offsets`
    /// fits them, `y` holds `acts.rows × rows` values and the CPU runs the kernels it was packed
    /// for.
    ///
    /// # Safety
    /// No other thread writes the columns of `groups` in `y` meanwhile (`y` may be shared
    /// between threads that multiply other groups).
    pub unsafe fn matmul_groups(
        &self,
        acts: &Acts,
        offsets: &[i32],
        groups: std::ops::Range<usize>,
        y: *mut f32,
    ) {
        let q4_1 = self.format == WeightFormat::Q4_1;
        let sized = acts.format == self.format.act_format()
            && acts.blocks_per_row() == self.blocks
            && acts.k == self.blocks * 32
            && acts.qs.len() == acts.rows * acts.k
            && acts.d.len() == acts.rows * self.blocks
            && (!q4_1 || acts.sums.len() == acts.rows * self.blocks)
            && (q4_1 || offsets.len() == acts.qs.len() / 4)
            && groups.end * GROUP <= self.rows;
        if !sized || !self.kernels.runs() {
            return;
        }
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        {
            let pack = GROUP * self.format.block_bytes();
            if self.kernels == Kernels::Avx2 {
                // SAFETY: each group's blocks lie in `data` and its columns in `y` (checked
                // above, and the contract); the activation rows exist, and this code is
                // compiled only for targets with AVX2, FMA (and F16C with them).
                unsafe {
                    super::half_groups::walk(groups, acts.rows, |group| {
                        super::packed32_avx2::Tile {
                            q4_1,
                            p: self.data.as_ptr().add(group * self.blocks * pack),
                            blocks: self.blocks,
                            acts,
                            offsets,
                            out: y.add(group * GROUP),
                            stride: self.rows,
                        }
                    })
                };
                return;
            }
            for group in groups {
                // SAFETY: the group's blocks lie in `data`; the activation rows exist (checked
                // above), `offsets` has eight values per row and block; the caller owns the
                // group's columns of `y`, `acts.rows × rows` long.
                unsafe {
                    let p = self.data.as_ptr().add(group * self.blocks * pack);
                    let out = y.add(group * GROUP);
                    let tile = |n: usize, r: usize| {
                        let t = avx512::Tile {
                            p,
                            blocks: self.blocks,
                            acts,
                            offsets,
                            row0: r,
                            out,
                            stride: self.rows,
                        };
                        match (q4_1, n) {
                            (true, 1) => t.run::<true, 1>(),
                            (true, _) => t.run::<true, TILE_ACTS>(),
                            (false, 1) => t.run::<false, 1>(),
                            (false, _) => t.run::<false, TILE_ACTS>(),
                        }
                    };
                    let mut r = 0;
                    while r + TILE_ACTS <= acts.rows {
                        tile(TILE_ACTS, r);
                        r += TILE_ACTS;
                    }
                    if r < acts.rows {
                        tile(1, r);
                    }
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

/// Sets row `j`'s Q5_0 high bits `qh` in a packed block's eight masks (the AVX-512 form): mask
/// `k` (lo) and `4 + k` (hi) belong to nibble vector `k`'s low and high nibbles, whose byte
/// `4j + i` holds value `4k + i` (lo) or `16 + 4k + i` (hi) of row `j`.
fn put_high_masks(masks: &mut [u8], j: usize, qh: u32) {
    // Mask `m` is a little-endian u64 whose bit `4j + i` is byte `4j + i`'s; values `4k..4k +
    // 4` of row `j` are bits `4k..4k + 4` of `qh`, so each mask takes one nibble of `qh`.
    for (m, shift) in (0..4)
        .map(|k| (k, 4 * k))
        .chain((0..4).map(|k| (4 + k, 16 + 4 * k)))
    {
        let at = &mut masks[8 * m..8 * m + 8];
        let mut mask = u64::from_le_bytes([at[0], at[1], at[2], at[3], at[4], at[5], at[6], at[7]]);
        mask |= u64::from(qh >> shift & 0xf) << (4 * j);
        at.copy_from_slice(&mask.to_le_bytes());
    }
}

/// Sets row `j`'s Q5_0 high bits `qh` in a packed block's 64 high-bit bytes (the AVX2 form):
/// byte `4j + i` has in bit `k` the fifth bit of value `4k + i` (nibble vector `k`'s low
/// nibble at that byte) and in bit `4 + k` that of value `16 + 4k + i` (its high nibble).
fn put_high_bytes(bytes: &mut [u8], j: usize, qh: u32) {
    for i in 0..4 {
        let mut byte = 0u8;
        for k in 0..4 {
            byte |= ((qh >> (4 * k + i) & 1) as u8) << k;
            byte |= ((qh >> (16 + 4 * k + i) & 1) as u8) << (4 + k);
        }
        bytes[4 * j + i] = byte;
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
    use super::{DW, EXTRA, GROUP, Q4_1_QS, Q5_0_QS};

    /// Sixteen weight rows (the group at `p`) times activation rows from `row0`, written to
    /// `out[(row0 + r)·stride..][..16]`.
    pub(super) struct Tile<'a> {
        pub p: *const u8,
        pub blocks: usize,
        pub acts: &'a Acts,
        /// Q5_0: eight starting sums per activation row and block.
        pub offsets: &'a [i32],
        pub row0: usize,
        pub out: *mut f32,
        pub stride: usize,
    }

    impl Tile<'_> {
        /// `N` activation rows, Q4_1 weights where `Q4_1`, else Q5_0.
        ///
        /// # Safety
        /// `p` holds `blocks` packed blocks of that format, rows `row0..row0 + N` exist in
        /// `acts` (Q8_1 with its sums, or Q8_0 with `offsets`) with `blocks` blocks each, `out`
        /// has room for those rows at `stride`, and the CPU has AVX-512 F, BW, DQ, VL and VNNI.
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub(super) unsafe fn run<const Q4_1: bool, const N: usize>(&self) {
            let (p, blocks, acts) = (self.p, self.blocks, self.acts);
            let (pack, qs) = if Q4_1 {
                (GROUP * 20, Q4_1_QS)
            } else {
                (GROUP * 22, Q5_0_QS)
            };
            let nibble = _mm512_set1_epi8(0x0f);
            let sixteen = _mm512_set1_epi8(0x10);
            // Eight lanes of each activation row, one weight row per vector lane.
            let mut acc = [[_mm512_setzero_ps(); 8]; N];
            let mut mins = [_mm512_setzero_ps(); N];
            for b in 0..blocks {
                // SAFETY: inside the group's blocks and the rows' blocks (the contract).
                unsafe {
                    let blk = p.add(b * pack);
                    let dw = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(DW) as *const __m256i));
                    let at: [usize; N] = std::array::from_fn(|r| (self.row0 + r) * blocks + b);
                    let a: [*const u8; N] =
                        std::array::from_fn(|r| acts.qs.as_ptr().add(at[r] * 32).cast());
                    let d: [__m512; N] = std::array::from_fn(|r| {
                        _mm512_mul_ps(dw, _mm512_set1_ps(*acts.d.get_unchecked(at[r])))
                    });
                    if Q4_1 {
                        let m =
                            _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(EXTRA) as *const __m256i));
                        for r in 0..N {
                            let s = _mm512_set1_ps(*acts.sums.get_unchecked(at[r]));
                            mins[r] = _mm512_fmadd_ps(m, s, mins[r]);
                        }
                    }
                    for k in 0..4 {
                        let raw = _mm512_loadu_si512(blk.add(qs + 64 * k) as *const _);
                        let mut lo = _mm512_and_si512(raw, nibble);
                        let mut hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble);
                        if !Q4_1 {
                            let masks = blk.add(EXTRA) as *const u64;
                            let (ml, mh) = (
                                std::ptr::read_unaligned(masks.add(k)),
                                std::ptr::read_unaligned(masks.add(4 + k)),
                            );
                            lo = _mm512_mask_add_epi8(lo, ml, lo, sixteen);
                            hi = _mm512_mask_add_epi8(hi, mh, hi, sixteen);
                        }
                        for r in 0..N {
                            let (start_lo, start_hi) = if Q4_1 {
                                (_mm512_setzero_si512(), _mm512_setzero_si512())
                            } else {
                                let o = self.offsets.as_ptr().add(at[r] * 8);
                                (
                                    _mm512_set1_epi32(*o.add(k)),
                                    _mm512_set1_epi32(*o.add(4 + k)),
                                )
                            };
                            let al = std::ptr::read_unaligned(a[r].add(4 * k) as *const i32);
                            let ah = std::ptr::read_unaligned(a[r].add(16 + 4 * k) as *const i32);
                            let sl = _mm512_dpbusd_epi32(start_lo, lo, _mm512_set1_epi32(al));
                            let sh = _mm512_dpbusd_epi32(start_hi, hi, _mm512_set1_epi32(ah));
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
                let mut sum = _mm512_add_ps(_mm512_add_ps(h[0], h[2]), _mm512_add_ps(h[1], h[3]));
                if Q4_1 {
                    sum = _mm512_add_ps(sum, mins[r]);
                }
                // SAFETY: row `row0 + r` of `out` has sixteen values from here (the contract).
                unsafe {
                    _mm512_storeu_ps(self.out.add((self.row0 + r) * self.stride), sum);
                }
            }
        }
    }
}
