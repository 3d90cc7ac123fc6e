//! The K-quant (Q4_K, Q5_K, Q6_K) part of the [`super::avx2`] tiles: unpacking a block's 32-value
//! chunks and its scales, and the tile that multiplies one weight row's blocks into up to eight
//! activation rows ([`KTile`] keeps the float epilogue the AVX-512 tiles share).

use std::arch::x86_64::*;

use super::act::Acts;
use super::avx2::{Q4K, Q5K, Q6K, block_bytes, hsum_ps};
use super::format::{WeightFormat, k_scale_min};
use super::scalar::{k_accumulate_with, k_finish, k_scales, q6k_tiled_accumulate};

/// 32 unsigned values (chunk `c` of 8) of the K-quant block at `wb`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn decode_k_chunk<const F: u8>(wb: *const u8, c: usize) -> __m256i {
    let m4 = _mm256_set1_epi8(0x0f);
    // SAFETY: inside the rows `sized` checked; the CPU has the features.
    unsafe {
        if F == Q6K {
            let (n, t) = (c / 4, c % 4);
            let lo = _mm256_loadu_si256(wb.add(64 * n + (t & 1) * 32) as *const __m256i);
            let lo = if t < 2 { lo } else { _mm256_srli_epi16(lo, 4) };
            let hv = _mm256_loadu_si256(wb.add(128 + 32 * n) as *const __m256i);
            let hi = _mm256_srl_epi16(hv, _mm_cvtsi32_si128(2 * t as i32));
            let hi = _mm256_and_si256(hi, _mm256_set1_epi8(3));
            _mm256_or_si256(_mm256_and_si256(lo, m4), _mm256_slli_epi16(hi, 4))
        } else {
            let qs = if F == Q5K { 48 } else { 16 };
            let v = _mm256_loadu_si256(wb.add(qs + 32 * (c / 2)) as *const __m256i);
            let v = if c.is_multiple_of(2) {
                v
            } else {
                _mm256_srli_epi16(v, 4)
            };
            let q = _mm256_and_si256(v, m4);
            if F == Q5K {
                let qh = _mm256_loadu_si256(wb.add(16) as *const __m256i);
                let bit = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(c as i32));
                let bit = _mm256_and_si256(bit, _mm256_set1_epi8(1));
                _mm256_or_si256(q, _mm256_slli_epi16(bit, 4))
            } else {
                q
            }
        }
    }
}

/// One K-quant block's constants: what the integer sums multiply by and what the float epilogue
/// needs. Shared with the AVX-512 kernels, which differ only in how they form the sums.
pub(super) struct KBlock {
    /// Per-16 scales as i16 pairs, one vector per 32-value chunk.
    pub(super) sc: [__m256i; 8],
    /// The correction weight of each 16 values (the mins for Q4K/Q5K, `32·scale` for Q6K, whose
    /// offset is subtracted from the sum), as an i16 in the low half of its i32 lane: one
    /// `madd_epi16` with the i32 bsums (which fit in i16) is then their exact product.
    cw: [__m256i; 2],
    dw: f32,
    dmin: f32,
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn k_block<const F: u8>(block: &[u8]) -> KBlock {
    let mut sc = [_mm256_setzero_si256(); 8];
    let mut cw = [0i32; 16];
    let format = if F == Q6K {
        for (c, s) in sc.iter_mut().enumerate() {
            let s0 = i16::from(block[192 + 2 * c] as i8);
            let s1 = i16::from(block[192 + 2 * c + 1] as i8);
            *s = _mm256_set_m128i(_mm_set1_epi16(s1), _mm_set1_epi16(s0));
        }
        for (g, w) in cw.iter_mut().enumerate() {
            *w = i32::from((32 * i16::from(block[192 + g] as i8)) as u16);
        }
        WeightFormat::Q6K
    } else {
        for (j, s) in sc.iter_mut().enumerate() {
            let (scale, min) = k_scale_min(&block[4..16], j);
            *s = _mm256_set1_epi16(i16::from(scale));
            cw[2 * j] = i32::from(min);
            cw[2 * j + 1] = i32::from(min);
        }
        if F == Q5K {
            WeightFormat::Q5K
        } else {
            WeightFormat::Q4K
        }
    };
    // SAFETY: `cw` holds sixteen i32.
    let cw = unsafe {
        [
            _mm256_loadu_si256(cw.as_ptr() as *const __m256i),
            _mm256_loadu_si256(cw.as_ptr().add(8) as *const __m256i),
        ]
    };
    let (dw, dmin) = k_scales(format, block);
    KBlock { sc, cw, dw, dmin }
}

/// The float state of a tile of `N` activation rows across a K-quant weight row's blocks.
pub(super) struct KTile<const N: usize> {
    /// Q4K/Q5K (and tiled Q6K): two running sums per row (see `scalar::k_accumulate`).
    acc: [[f32; 2]; N],
    /// Q6K in the single-row order: eight lanes per row.
    lanes: [__m256; N],
    /// Q4K rows in llama.cpp's 4-row order need sums per 64 values; decode tiles have none.
    split: bool,
    /// Split Q4K in tiles of eight rows: the two running sums with one row per lane.
    main8: __m256,
    min8: __m256,
}

impl<const N: usize> KTile<N> {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn new<const F: u8>(acts: &Acts, row0: usize) -> Self {
        Self {
            acc: [[0f32; 2]; N],
            lanes: [_mm256_setzero_ps(); N],
            split: F == Q4K && (0..N).any(|r| acts.order(row0 + r).q4k_groups),
            main8: _mm256_setzero_ps(),
            min8: _mm256_setzero_ps(),
        }
    }

    /// Whether the block's integer sums must come per 64 values (`parts`), not whole (`sums`).
    pub(super) fn split(&self) -> bool {
        self.split
    }

    /// Adds block `b` to every row: `sums[r]` holds row `r`'s eight lane sums of `scale·q·a`,
    /// or, when [`Self::split`], lane `s` of `parts[r]` the sum for values `64s..64s+64`.
    ///
    /// # Safety
    /// Rows `row0..row0 + N` and block `b` exist in `acts`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn add_block<const F: u8>(
        &mut self,
        kb: &KBlock,
        sums: &[__m256i; N],
        parts: &[__m128i; N],
        acts: &Acts,
        row0: usize,
        b: usize,
    ) {
        let nb = acts.blocks_per_row();
        let (dw, dmin) = (kb.dw, kb.dmin);
        // Split Q4K, eight rows: each row's sums per 64 values and its activation scale.
        let (mut xs, mut cs, mut das) = (
            [_mm_setzero_si128(); 8],
            [_mm_setzero_si128(); 8],
            [0f32; 8],
        );
        for (r, sum) in sums.iter().enumerate() {
            let blk = (row0 + r) * nb + b;
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let bs = unsafe { acts.bsums.as_ptr().add(blk * 16) };
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let (b0, b1) = unsafe {
                (
                    _mm256_loadu_si256(bs as *const __m256i),
                    _mm256_loadu_si256(bs.add(8) as *const __m256i),
                )
            };
            let (c0, c1) = (
                _mm256_madd_epi16(kb.cw[0], b0),
                _mm256_madd_epi16(kb.cw[1], b1),
            );
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let da = unsafe { *acts.d.as_ptr().add(blk) };
            let order = acts.order(row0 + r);
            if F == Q6K {
                // Lane l less 32·(bsum·scale) of groups 2l and 2l+1, as ggml's AVX2 kernel.
                let pairs = _mm256_hadd_epi32(c0, c1);
                let pairs =
                    _mm256_permutevar8x32_epi32(pairs, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
                let lane_sums = _mm256_sub_epi32(*sum, pairs);
                if order.q6k_tiled {
                    self.acc[r][0] =
                        q6k_tiled_accumulate(dw, da, hsum_epi32(lane_sums), self.acc[r][0]);
                } else {
                    let d = _mm256_set1_ps(da * dw);
                    self.lanes[r] =
                        _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lane_sums), self.lanes[r]);
                }
            } else if self.split {
                let sumi = parts[r];
                // The corrections per 64 values: groups 4s..4s+4 of the sixteen.
                let h = _mm256_hadd_epi32(c0, c1);
                let h = _mm256_hadd_epi32(h, h);
                let corr =
                    _mm_unpacklo_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
                // The single-row order adds whole-block sums: all in the first of the four.
                let (sumi, corr) = if order.q4k_groups {
                    (sumi, corr)
                } else {
                    (total_in_first(sumi), total_in_first(corr))
                };
                if N == 8 {
                    (xs[r], cs[r], das[r]) = (sumi, corr, da);
                } else {
                    let (mut si, mut ci) = ([0i32; 4], [0i32; 4]);
                    // SAFETY: both arrays hold four i32.
                    unsafe {
                        _mm_storeu_si128(si.as_mut_ptr() as *mut __m128i, sumi);
                        _mm_storeu_si128(ci.as_mut_ptr() as *mut __m128i, corr);
                    }
                    for (&si, &ci) in si.iter().zip(&ci) {
                        self.acc[r] = k_accumulate_with(dw, dmin, da, (si, ci), self.acc[r]);
                    }
                }
            } else {
                let corr = hsum_epi32(_mm256_add_epi32(c0, c1));
                self.acc[r] =
                    k_accumulate_with(dw, dmin, da, (hsum_epi32(*sum), corr), self.acc[r]);
            }
        }
        if self.split && N == 8 {
            // Row r in lane r: `main += (da·dw)·sumi`, `min += (da·dmin)·corr`, per 64 values.
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let da = unsafe { _mm256_loadu_ps(das.as_ptr()) };
            let d = _mm256_mul_ps(da, _mm256_set1_ps(dw));
            let m = _mm256_mul_ps(da, _mm256_set1_ps(dmin));
            for (sk, ck) in transpose8x4(xs).into_iter().zip(transpose8x4(cs)) {
                self.main8 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sk), d, self.main8);
                self.min8 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ck), m, self.min8);
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn finish<const F: u8>(mut self, acts: &Acts, row0: usize) -> [f32; N] {
        if self.split && N == 8 {
            let (mut m, mut n) = ([0f32; 8], [0f32; 8]);
            // SAFETY: both arrays hold eight f32.
            unsafe {
                _mm256_storeu_ps(m.as_mut_ptr(), self.main8);
                _mm256_storeu_ps(n.as_mut_ptr(), self.min8);
            }
            for (a, (&m, &n)) in self.acc.iter_mut().zip(m.iter().zip(&n)) {
                *a = [m, n];
            }
        }
        std::array::from_fn(|r| {
            if F == Q6K && !acts.order(row0 + r).q6k_tiled {
                hsum_ps(self.lanes[r])
            } else {
                k_finish(self.acc[r])
            }
        })
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile_k<const F: u8, const N: usize>(
    w: *const u8,
    acts: &Acts,
    row0: usize,
) -> [f32; N] {
    let nb = acts.blocks_per_row();
    let mut tile = KTile::<N>::new::<F>(acts, row0);
    for b in 0..nb {
        // SAFETY: inside the rows `sized` checked; the CPU has the features.
        let wb = unsafe { w.add(b * block_bytes(F)) };
        // SAFETY: one whole block of `w` (checked by `dot_rows`).
        let kb = k_block::<F>(unsafe { std::slice::from_raw_parts(wb, block_bytes(F)) });
        let mut sums = [_mm256_setzero_si256(); N];
        let mut parts = [[_mm_setzero_si128(); 4]; N];
        for (c, sc) in kb.sc.iter().enumerate() {
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let q = unsafe { decode_k_chunk::<F>(wb, c) };
            for (r, sum) in sums.iter_mut().enumerate() {
                let blk = (row0 + r) * nb + b;
                // SAFETY: inside the rows `sized` checked; the CPU has the features.
                let a = unsafe {
                    _mm256_loadu_si256(acts.qs.as_ptr().add(blk * 256 + 32 * c) as *const __m256i)
                };
                let p = _mm256_maddubs_epi16(q, a);
                *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(p, *sc));
            }
            if tile.split() && c % 2 == 1 {
                for (part, sum) in parts.iter_mut().zip(sums.iter_mut()) {
                    part[c / 2] = _mm_add_epi32(
                        _mm256_castsi256_si128(*sum),
                        _mm256_extracti128_si256(*sum, 1),
                    );
                    *sum = _mm256_setzero_si256();
                }
            }
        }
        let mut totals = [_mm_setzero_si128(); N];
        for (t, p) in totals.iter_mut().zip(parts) {
            *t = hsum4_epi32(p);
        }
        // SAFETY: inside the rows `sized` checked; the CPU has the features.
        unsafe { tile.add_block::<F>(&kb, &sums, &totals, acts, row0, b) };
    }
    tile.finish::<F>(acts, row0)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_epi32(x: __m256i) -> i32 {
    let r = _mm_add_epi32(_mm256_extracti128_si256(x, 1), _mm256_castsi256_si128(x));
    let r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0b01_00_11_10));
    let r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0b10_11_00_01));
    _mm_cvtsi128_si32(r)
}

/// `[Σv, 0, 0, 0]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn total_in_first(v: __m128i) -> __m128i {
    let t = _mm_hadd_epi32(v, v);
    _mm_and_si128(_mm_hadd_epi32(t, t), _mm_setr_epi32(-1, 0, 0, 0))
}

/// Eight rows of four i32 as four vectors of eight: `out[k]` lane `r` is `rows[r]` lane `k`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn transpose8x4(rows: [__m128i; 8]) -> [__m256i; 4] {
    let y: [__m256i; 4] = std::array::from_fn(|r| _mm256_set_m128i(rows[r + 4], rows[r]));
    let t0 = _mm256_unpacklo_epi32(y[0], y[1]);
    let t1 = _mm256_unpacklo_epi32(y[2], y[3]);
    let t2 = _mm256_unpackhi_epi32(y[0], y[1]);
    let t3 = _mm256_unpackhi_epi32(y[2], y[3]);
    [
        _mm256_unpacklo_epi64(t0, t1),
        _mm256_unpackhi_epi64(t0, t1),
        _mm256_unpacklo_epi64(t2, t3),
        _mm256_unpackhi_epi64(t2, t3),
    ]
}

/// The sums of four vectors' four i32 lanes each, as the lanes of one.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum4_epi32(v: [__m128i; 4]) -> __m128i {
    _mm_hadd_epi32(_mm_hadd_epi32(v[0], v[1]), _mm_hadd_epi32(v[2], v[3]))
}
