//! The AVX2 tile of [`super::packed32`]: eight weight rows (one half of a packed group, one row
//! per 32-bit lane) times one activation row. Per block and nibble vector, `vpmaddubsw` and
//! `vpmaddwd` form four values' integer sums for the eight rows at once against four broadcast
//! activation bytes; the float operations per row are those of the scalar reference, in its
//! order (see [`super::packed32`]), so the bits are equal. For several activation rows (a
//! prefill) each half group's values are unpacked once into plain bytes, which every row then
//! reads.

use std::arch::x86_64::*;

use super::act::Acts;
use super::half_groups::HalfTile;
use super::packed32::{DW, EXTRA, GROUP, Q4_1_QS, Q5_0_QS};

/// Sixteen weight rows (the packed group at `p`) times activation rows, one half of the group
/// and one activation row per [`Tile::run`]; row `r`'s results go to `out[r·stride..][..16]`.
pub(super) struct Tile<'a> {
    /// Q4_1 blocks, else Q5_0.
    pub q4_1: bool,
    pub p: *const u8,
    pub blocks: usize,
    pub acts: &'a Acts,
    /// Q5_0: eight starting sums per activation row and block.
    pub offsets: &'a [i32],
    pub out: *mut f32,
    pub stride: usize,
}

/// Bytes of one block's unpacked values for one half group: eight vectors (nibble vector `k`'s
/// low values at `2k`, its high values at `2k + 1`).
const UNPACKED_BLOCK: usize = 256;

impl Tile<'_> {
    /// The values of rows `8·half..8·half + 8` of the group, unpacked into `buf` (`blocks ×`
    /// [`UNPACKED_BLOCK`] bytes) as unsigned bytes (Q4_1: 0..16; Q5_0: value + 16, 0..32).
    ///
    /// # Safety
    /// As [`Self::run_half`], and `buf` holds `blocks ×` [`UNPACKED_BLOCK`] bytes.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack_half<const Q4_1: bool>(&self, half: usize, buf: &mut [u8]) {
        let (pack, qs) = layout::<Q4_1>();
        for b in 0..self.blocks {
            // SAFETY: inside the group's blocks and `buf` (the contract).
            unsafe {
                let blk = self.p.add(b * pack);
                let dst = buf.as_mut_ptr().add(b * UNPACKED_BLOCK);
                let mut bits = HighBits::load::<Q4_1>(blk, half);
                for k in 0..4 {
                    let (lo, hi) = values::<Q4_1>(blk, qs, k, half, &mut bits);
                    _mm256_storeu_si256(dst.add(64 * k).cast(), lo);
                    _mm256_storeu_si256(dst.add(64 * k + 32).cast(), hi);
                }
            }
        }
    }

    /// Rows `8·half..8·half + 8` of the group times activation row `row`, Q4_1 weights where
    /// `Q4_1`, else Q5_0 (with its high bits in the AVX2 form); the values are read from
    /// `unpacked` where `UNPACKED` (what [`Self::unpack_half`] wrote for this half), else unpacked
    /// here.
    ///
    /// # Safety
    /// `p` holds `blocks` packed blocks of that format, row `row` exists in `acts` (Q8_1 with
    /// its sums, or Q8_0 with `offsets`) with `blocks` blocks, `out` has room for that row at
    /// `stride`, `half` is 0 or 1, `unpacked` holds `blocks ×` [`UNPACKED_BLOCK`]
    /// bytes where `UNPACKED`, and the CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn run_half<const Q4_1: bool, const UNPACKED: bool>(
        &self,
        half: usize,
        row: usize,
        unpacked: &[u8],
    ) {
        let (p, blocks, acts) = (self.p, self.blocks, self.acts);
        let (pack, qs) = layout::<Q4_1>();
        let ones = _mm256_set1_epi16(1);
        // Eight lanes of four products, one weight row per vector lane.
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut mins = _mm256_setzero_ps();
        for b in 0..blocks {
            // SAFETY: inside the group's blocks and the row's blocks (the contract).
            unsafe {
                let blk = p.add(b * pack);
                let at = row * blocks + b;
                let a = acts.qs.as_ptr().add(at * 32);
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(DW + 16 * half).cast()));
                let d = _mm256_mul_ps(dw, _mm256_set1_ps(*acts.d.get_unchecked(at)));
                if Q4_1 {
                    let m = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(EXTRA + 16 * half).cast()));
                    let s = _mm256_set1_ps(*acts.sums.get_unchecked(at));
                    mins = _mm256_fmadd_ps(m, s, mins);
                }
                let mut bits = if UNPACKED {
                    HighBits::none()
                } else {
                    HighBits::load::<Q4_1>(blk, half)
                };
                for k in 0..4 {
                    let (lo, hi) = if UNPACKED {
                        let src = unpacked.as_ptr().add(b * UNPACKED_BLOCK + 64 * k);
                        (
                            _mm256_loadu_si256(src.cast()),
                            _mm256_loadu_si256(src.add(32).cast()),
                        )
                    } else {
                        values::<Q4_1>(blk, qs, k, half, &mut bits)
                    };
                    let al = _mm256_set1_epi32(std::ptr::read_unaligned(a.add(4 * k).cast()));
                    let ah = _mm256_set1_epi32(std::ptr::read_unaligned(a.add(16 + 4 * k).cast()));
                    let mut sl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, al), ones);
                    let mut sh = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, ah), ones);
                    if !Q4_1 {
                        let o = self.offsets.as_ptr().add(at * 8);
                        sl = _mm256_add_epi32(sl, _mm256_set1_epi32(*o.add(k)));
                        sh = _mm256_add_epi32(sh, _mm256_set1_epi32(*o.add(4 + k)));
                    }
                    acc[k] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sl), acc[k]);
                    acc[k + 4] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sh), acc[k + 4]);
                }
            }
        }
        let h = [
            _mm256_add_ps(acc[0], acc[4]),
            _mm256_add_ps(acc[1], acc[5]),
            _mm256_add_ps(acc[2], acc[6]),
            _mm256_add_ps(acc[3], acc[7]),
        ];
        let mut sum = _mm256_add_ps(_mm256_add_ps(h[0], h[2]), _mm256_add_ps(h[1], h[3]));
        if Q4_1 {
            sum = _mm256_add_ps(sum, mins);
        }
        // SAFETY: row `row` of `out` has sixteen values from here (the contract).
        unsafe { _mm256_storeu_ps(self.out.add(row * self.stride + 8 * half), sum) };
    }
}

impl HalfTile for Tile<'_> {
    fn unpacked_bytes(&self) -> usize {
        self.blocks * UNPACKED_BLOCK
    }

    unsafe fn unpack(&self, half: usize, buf: &mut [u8]) {
        // SAFETY: the trait's contract is `unpack_half`'s.
        unsafe {
            if self.q4_1 {
                self.unpack_half::<true>(half, buf)
            } else {
                self.unpack_half::<false>(half, buf)
            }
        }
    }

    unsafe fn run(&self, half: usize, row: usize, unpacked: Option<&[u8]>) {
        // SAFETY: the trait's contract is `run_half`'s.
        unsafe {
            match (self.q4_1, unpacked) {
                (true, Some(buf)) => self.run_half::<true, true>(half, row, buf),
                (true, None) => self.run_half::<true, false>(half, row, &[]),
                (false, Some(buf)) => self.run_half::<false, true>(half, row, buf),
                (false, None) => self.run_half::<false, false>(half, row, &[]),
            }
        }
    }
}

/// A packed block's bytes and where its nibble vectors start.
fn layout<const Q4_1: bool>() -> (usize, usize) {
    if Q4_1 {
        (GROUP * 20, Q4_1_QS)
    } else {
        (GROUP * 22, Q5_0_QS)
    }
}

/// Q5_0's fifth bits of one half group's block, walked nibble vector by nibble vector: those
/// of vector `k`'s low values are bit `k` of each high-bit byte, moved to bit 4 (`lo`), those
/// of its high values bit `4 + k` (`hi`); both shift down one bit per vector.
struct HighBits {
    lo: __m256i,
    hi: __m256i,
}

impl HighBits {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn none() -> Self {
        Self {
            lo: _mm256_setzero_si256(),
            hi: _mm256_setzero_si256(),
        }
    }

    /// # Safety
    /// `blk` is a packed block of the format (`Q4_1` or Q5_0); `half` is 0 or 1.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load<const Q4_1: bool>(blk: *const u8, half: usize) -> Self {
        if Q4_1 {
            return Self::none();
        }
        // SAFETY: the block's 64 high-bit bytes (the contract).
        let hi = unsafe { _mm256_loadu_si256(blk.add(EXTRA + 32 * half).cast()) };
        // 16-bit shifts: bit 4 of each byte only ever comes from its own byte.
        Self {
            lo: _mm256_slli_epi16::<4>(hi),
            hi,
        }
    }
}

/// Nibble vector `k` of half `half` of the packed block `blk` as two vectors of unsigned values
/// (low nibbles, high nibbles), Q5_0's fifth bits added from `bits`, which moves on a vector.
///
/// # Safety
/// `blk` is a packed block of the format with its nibble vectors from `qs`; `k < 4`, `half` 0
/// or 1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn values<const Q4_1: bool>(
    blk: *const u8,
    qs: usize,
    k: usize,
    half: usize,
    bits: &mut HighBits,
) -> (__m256i, __m256i) {
    let nibble = _mm256_set1_epi8(0x0f);
    // SAFETY: inside the block (the contract).
    let raw = unsafe { _mm256_loadu_si256(blk.add(qs + 64 * k + 32 * half).cast()) };
    let mut lo = _mm256_and_si256(raw, nibble);
    let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), nibble);
    if !Q4_1 {
        let fifth = _mm256_set1_epi8(0x10);
        lo = _mm256_or_si256(lo, _mm256_and_si256(bits.lo, fifth));
        hi = _mm256_or_si256(hi, _mm256_and_si256(bits.hi, fifth));
        bits.lo = _mm256_srli_epi16::<1>(bits.lo);
        bits.hi = _mm256_srli_epi16::<1>(bits.hi);
    }
    (lo, hi)
}
