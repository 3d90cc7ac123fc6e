//! The AVX2 tile of [`super::packed`]: eight Q4_K weight rows (one half of a packed group, one
//! row per 32-bit lane) times one activation row. Per 32-value sub-block, `vpmaddubsw` forms
//! the eight rows' products with four broadcast activation bytes as 16-bit pairs, which sum
//! exactly in 16 bits over the sub-block (at most 8 · 2 · 15 · 128 = 30,720) before one
//! `vpmaddwd` widens them. The integer sums are exact and every row gets the float operations
//! of [`super::scalar`] in its order, so the bits are the other kernels'. For several
//! activation rows (a prefill) each half group's values are unpacked once into plain bytes.

use std::arch::x86_64::*;

use super::act::Acts;
use super::half_groups::HalfTile;
use super::packed::{DMIN, DW, MINS, PACK, QS, SC};

/// Bytes of one block's unpacked values for one half group: per sub-block pair `s` and
/// four-value step `g`, the low nibbles' 32 bytes at `64·(8s + g)`, the high ones' after them.
const UNPACKED_BLOCK: usize = 2048;

/// Sixteen weight rows (the packed group at `p`) times activation rows, one half of the group
/// and one activation row per [`Tile::run`]; row `r`'s results go to `out[r·stride..][..16]`.
pub(super) struct Tile<'a> {
    pub p: *const u8,
    pub blocks: usize,
    pub acts: &'a Acts,
    pub out: *mut f32,
    pub stride: usize,
}

impl Tile<'_> {
    /// The values of rows `8·half..8·half + 8` of the group, unpacked into `buf` (`blocks ×`
    /// [`UNPACKED_BLOCK`] bytes).
    ///
    /// # Safety
    /// As [`Self::run_half`], and `buf` holds `blocks ×` [`UNPACKED_BLOCK`] bytes.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack_half(&self, half: usize, buf: &mut [u8]) {
        for b in 0..self.blocks {
            for s in 0..4 {
                for g in 0..8 {
                    // SAFETY: inside the group's blocks and `buf` (the contract).
                    unsafe {
                        let (lo, hi) = values(self.p.add(b * PACK), s, g, half);
                        let dst = buf.as_mut_ptr().add(b * UNPACKED_BLOCK + 64 * (8 * s + g));
                        _mm256_storeu_si256(dst.cast(), lo);
                        _mm256_storeu_si256(dst.add(32).cast(), hi);
                    }
                }
            }
        }
    }

    /// Rows `8·half..8·half + 8` of the group times activation row `row`; the values are read
    /// from `unpacked` where `UNPACKED` (what [`Self::unpack_half`] wrote for this half), else
    /// unpacked here.
    ///
    /// # Safety
    /// `p` holds `blocks` packed blocks, row `row` exists in `acts` (Q8_K with its block sums)
    /// with `blocks` blocks, `out` has room for that row at `stride`, `half` is 0 or 1,
    /// `unpacked` holds `blocks ×` [`UNPACKED_BLOCK`] bytes where `UNPACKED`, and the CPU has
    /// AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn run_half<const UNPACKED: bool>(&self, half: usize, row: usize, unpacked: &[u8]) {
        let (p, blocks, acts) = (self.p, self.blocks, self.acts);
        let ones = _mm256_set1_epi16(1);
        let groups = acts.order(row).q4k_groups;
        // The row's two running sums, one weight row per lane.
        let mut main = _mm256_setzero_ps();
        let mut mins = _mm256_setzero_ps();
        for b in 0..blocks {
            // SAFETY: inside the group's blocks, the row's blocks and `unpacked` (the
            // contract).
            unsafe {
                let blk = p.add(b * PACK);
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(DW + 16 * half).cast()));
                let dmin = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(DMIN + 16 * half).cast()));
                let at = row * blocks + b;
                let a = acts.qs.as_ptr().add(at * 256);
                let da = _mm256_set1_ps(*acts.d.get_unchecked(at));
                // Whole-block sums for rows in the single-row order.
                let mut sumi_all = _mm256_setzero_si256();
                let mut corr_all = _mm256_setzero_si256();
                for s in 0..4 {
                    let mut lo16 = _mm256_setzero_si256();
                    let mut hi16 = _mm256_setzero_si256();
                    for g in 0..8 {
                        let (lo, hi) = if UNPACKED {
                            let src = unpacked.as_ptr().add(b * UNPACKED_BLOCK + 64 * (8 * s + g));
                            (
                                _mm256_loadu_si256(src.cast()),
                                _mm256_loadu_si256(src.add(32).cast()),
                            )
                        } else {
                            values(blk, s, g, half)
                        };
                        let al = std::ptr::read_unaligned(a.add(64 * s + 4 * g).cast::<i32>());
                        let ah = std::ptr::read_unaligned(a.add(64 * s + 32 + 4 * g).cast::<i32>());
                        lo16 =
                            _mm256_add_epi16(lo16, _mm256_maddubs_epi16(lo, _mm256_set1_epi32(al)));
                        hi16 =
                            _mm256_add_epi16(hi16, _mm256_maddubs_epi16(hi, _mm256_set1_epi32(ah)));
                    }
                    let scales = |at: usize| {
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk.add(at + 8 * half).cast()))
                    };
                    let sumi = _mm256_add_epi32(
                        _mm256_mullo_epi32(_mm256_madd_epi16(lo16, ones), scales(SC + 32 * s)),
                        _mm256_mullo_epi32(_mm256_madd_epi16(hi16, ones), scales(SC + 32 * s + 16)),
                    );
                    // The mins of sub-blocks 2s and 2s+1 as i16 pairs, one row per lane, times
                    // their activation block sums: Σ min·bsum of the part's two sub-blocks.
                    let min_pairs = _mm256_or_si256(
                        scales(MINS + 32 * s),
                        _mm256_slli_epi32::<16>(scales(MINS + 32 * s + 16)),
                    );
                    let bs = acts.bsums.as_ptr().add(at * 16 + 4 * s);
                    let pair = u32::from((*bs + *bs.add(1)) as u16)
                        | u32::from((*bs.add(2) + *bs.add(3)) as u16) << 16;
                    let corr = _mm256_madd_epi16(min_pairs, _mm256_set1_epi32(pair as i32));
                    if groups {
                        let d = _mm256_mul_ps(da, dw);
                        let m = _mm256_mul_ps(da, dmin);
                        main = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), d, main);
                        mins = _mm256_fmadd_ps(_mm256_cvtepi32_ps(corr), m, mins);
                    } else {
                        sumi_all = _mm256_add_epi32(sumi_all, sumi);
                        corr_all = _mm256_add_epi32(corr_all, corr);
                    }
                }
                if !groups {
                    let d = _mm256_mul_ps(da, dw);
                    let m = _mm256_mul_ps(da, dmin);
                    main = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi_all), d, main);
                    mins = _mm256_fmadd_ps(_mm256_cvtepi32_ps(corr_all), m, mins);
                }
            }
        }
        // SAFETY: row `row` of `out` has sixteen values from here (the contract).
        unsafe {
            _mm256_storeu_ps(
                self.out.add(row * self.stride + 8 * half),
                _mm256_sub_ps(main, mins),
            )
        };
    }
}

impl HalfTile for Tile<'_> {
    fn unpacked_bytes(&self) -> usize {
        self.blocks * UNPACKED_BLOCK
    }

    unsafe fn unpack(&self, half: usize, buf: &mut [u8]) {
        // SAFETY: the trait's contract is `unpack_half`'s.
        unsafe { self.unpack_half(half, buf) }
    }

    unsafe fn run(&self, half: usize, row: usize, unpacked: Option<&[u8]>) {
        // SAFETY: the trait's contract is `run_half`'s.
        unsafe {
            match unpacked {
                Some(buf) => self.run_half::<true>(half, row, buf),
                None => self.run_half::<false>(half, row, &[]),
            }
        }
    }
}

/// Step `g` of sub-block pair `s` in half `half` of the packed block `blk`: four values of
/// each of the eight rows from the low nibbles (sub-block `2s`) and the high ones (`2s + 1`).
///
/// # Safety
/// `blk` is a packed block; `s < 4`, `g < 8`, `half` 0 or 1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn values(blk: *const u8, s: usize, g: usize, half: usize) -> (__m256i, __m256i) {
    let nibble = _mm256_set1_epi8(0x0f);
    // SAFETY: inside the block (the contract).
    let raw = unsafe { _mm256_loadu_si256(blk.add(QS + 512 * s + 64 * g + 32 * half).cast()) };
    (
        _mm256_and_si256(raw, nibble),
        _mm256_and_si256(_mm256_srli_epi16::<4>(raw), nibble),
    )
}
