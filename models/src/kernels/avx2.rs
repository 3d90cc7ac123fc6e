//! AVX2 + FMA dot products of one quantised weight row with up to eight activation rows at a
//! time: each weight block is unpacked once and multiplied into every row of the tile, so
//! prefill and batched decode read the weights once per step. Results equal [`super::scalar`]'s
//! bit for bit (same integer sums, same float order).

use std::arch::x86_64::*;

use super::act::Acts;
use super::format::{WeightFormat, k_scale_min};
use super::scalar::{k_accumulate_with, k_finish, k_scales, q6k_tiled_accumulate};

pub(super) const Q4_0: u8 = 0;
pub(super) const Q5_0: u8 = 1;
pub(super) const Q8_0: u8 = 2;
pub(super) const Q4K: u8 = 3;
pub(super) const Q5K: u8 = 4;
pub(super) const Q6K: u8 = 5;

/// `out[j] = w · acts[first + j]`. Does nothing unless `w` holds one row of `acts.k` weights
/// and the rows exist.
pub fn dot_rows(format: WeightFormat, w: &[u8], acts: &Acts, first: usize, out: &mut [f32]) {
    if !sized(format, w, acts, first, out) {
        return;
    }
    // SAFETY: the sizes were checked above; this module is compiled only for targets with AVX2
    // and FMA.
    unsafe { by_format!(rows, format, w, acts, first, out) }
}

/// `$rows::<F>(w, acts, first, out)` with `F` the constant of `format`.
macro_rules! by_format {
    ($rows:ident, $format:expr, $w:expr, $acts:expr, $first:expr, $out:expr) => {
        match $format {
            WeightFormat::Q4_0 => $rows::<Q4_0>($w, $acts, $first, $out),
            WeightFormat::Q4_1 => super::q4_1::dot_rows($w, $acts, $first, $out),
            WeightFormat::Q5_0 => $rows::<Q5_0>($w, $acts, $first, $out),
            WeightFormat::Q8_0 => $rows::<Q8_0>($w, $acts, $first, $out),
            WeightFormat::Q4K => $rows::<Q4K>($w, $acts, $first, $out),
            WeightFormat::Q5K => $rows::<Q5K>($w, $acts, $first, $out),
            WeightFormat::Q6K => $rows::<Q6K>($w, $acts, $first, $out),
        }
    };
}
pub(super) use by_format;

/// Whether `w` holds one row of `acts.k` weights in `format` and rows `first..first + out.len()`
/// exist in `acts`, with the sizes the kernels index by.
pub(super) fn sized(
    format: WeightFormat,
    w: &[u8],
    acts: &Acts,
    first: usize,
    out: &[f32],
) -> bool {
    let nb = acts.blocks_per_row();
    w.len() == nb * format.block_bytes()
        && first + out.len() <= acts.rows
        && acts.qs.len() == acts.rows * acts.k
        && acts.d.len() == acts.rows * nb
        && (format.act_format() != super::ActFormat::Q8K || acts.bsums.len() == acts.qs.len() / 16)
        && format.act_format() == acts.format
}

/// Calls `$tile::<F, N>(w, acts, first + i, &mut out[i..i + N])` over `out` in tiles of eight
/// rows, then four, then the rest (in an `unsafe` function with the tile's target features).
macro_rules! tiled_rows {
    ($tile:ident, $f:ident, $w:expr, $acts:expr, $first:expr, $out:expr) => {{
        let (w, acts, first, out) = ($w, $acts, $first, $out);
        let mut i = 0;
        while i + 8 <= out.len() {
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            unsafe { $tile::<$f, 8>(w, acts, first + i, &mut out[i..i + 8]) };
            i += 8;
        }
        while i + 4 <= out.len() {
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            unsafe { $tile::<$f, 4>(w, acts, first + i, &mut out[i..i + 4]) };
            i += 4;
        }
        // SAFETY: inside the rows `sized` checked; the CPU has the features.
        unsafe {
            match out.len() - i {
                3 => $tile::<$f, 3>(w, acts, first + i, &mut out[i..]),
                2 => $tile::<$f, 2>(w, acts, first + i, &mut out[i..]),
                1 => $tile::<$f, 1>(w, acts, first + i, &mut out[i..]),
                _ => {}
            }
        }
    }};
}
pub(super) use tiled_rows;

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows<const F: u8>(w: &[u8], acts: &Acts, first: usize, out: &mut [f32]) {
    tiled_rows!(tile, F, w, acts, first, out);
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const F: u8, const N: usize>(w: &[u8], acts: &Acts, row0: usize, out: &mut [f32]) {
    // SAFETY: inside the rows `sized` checked; the CPU has the features.
    let res = unsafe {
        if F <= Q8_0 {
            tile32::<F, N>(w.as_ptr(), acts, row0)
        } else {
            tile_k::<F, N>(w.as_ptr(), acts, row0)
        }
    };
    out[..N].copy_from_slice(&res);
}

/// Horizontal sum in ggml's order (see [`super::scalar::hsum8`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_ps(x: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
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

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: inside the rows `sized` checked; the CPU has the features.
    let bits = unsafe { std::ptr::read_unaligned(p as *const u16) };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// 16 bytes at `p` as 32 nibbles: low nibbles in bytes 0..16, high nibbles in 16..32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: inside the rows `sized` checked; the CPU has the features.
    let t = unsafe { _mm_loadu_si128(p as *const __m128i) };
    let v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    _mm256_and_si256(v, _mm256_set1_epi8(0x0f))
}

/// Byte `j` is 0xff where bit `j` of `x` is set, else 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bits_to_bytes(x: u32) -> __m256i {
    let v = _mm256_set1_epi32(x as i32);
    let shuf = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
        3, 3,
    );
    let bytes = _mm256_shuffle_epi8(v, shuf);
    let mask = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(bytes, mask), mask)
}

/// The 32 signed values of a Q4_0/Q5_0/Q8_0 block at `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn decode32<const F: u8>(p: *const u8) -> __m256i {
    // SAFETY: inside the rows `sized` checked; the CPU has the features.
    unsafe {
        match F {
            Q8_0 => _mm256_loadu_si256(p.add(2) as *const __m256i),
            Q4_0 => _mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8)),
            _ => {
                let qh = std::ptr::read_unaligned(p.add(2) as *const u32);
                // value - 16 == nibble | 0xf0 where the fifth bit is clear.
                let off = _mm256_andnot_si256(bits_to_bytes(qh), _mm256_set1_epi8(0xf0_u8 as i8));
                _mm256_or_si256(nibbles(p.add(6)), off)
            }
        }
    }
}

pub(super) const fn block_bytes(f: u8) -> usize {
    match f {
        Q4_0 => 18,
        Q5_0 => 22,
        Q8_0 => 34,
        Q4K => 144,
        Q5K => 176,
        _ => 210,
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile32<const F: u8, const N: usize>(w: *const u8, acts: &Acts, row0: usize) -> [f32; N] {
    let nb = acts.blocks_per_row();
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut qs = [std::ptr::null::<i8>(); N];
    let mut ds = [std::ptr::null::<f32>(); N];
    for r in 0..N {
        // SAFETY: rows row0..row0+N exist (checked by `dot_rows`).
        qs[r] = unsafe { acts.qs.as_ptr().add((row0 + r) * acts.k) };
        // SAFETY: inside the rows `sized` checked; the CPU has the features.
        ds[r] = unsafe { acts.d.as_ptr().add((row0 + r) * nb) };
    }
    for b in 0..nb {
        // SAFETY: inside the rows `sized` checked; the CPU has the features.
        let wb = unsafe { w.add(b * block_bytes(F)) };
        // SAFETY: inside the rows `sized` checked; the CPU has the features.
        let dw = _mm256_set1_ps(unsafe { f16_at(wb) });
        // SAFETY: inside the rows `sized` checked; the CPU has the features.
        let q = unsafe { decode32::<F>(wb) };
        let aq = _mm256_sign_epi8(q, q);
        for r in 0..N {
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let a = unsafe { _mm256_loadu_si256(qs[r].add(b * 32) as *const __m256i) };
            let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(a, q)), ones);
            // `dw · da` in f32, as a broadcast load and one vector multiply.
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let d = _mm256_mul_ps(dw, unsafe { _mm256_broadcast_ss(&*ds[r].add(b)) });
            acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc[r]);
        }
    }
    let mut out = [0f32; N];
    for (o, a) in out.iter_mut().zip(acc) {
        *o = hsum_ps(a);
    }
    out
}

/// Weight rows of a [`tile32_rows`] tile.
const TILE_W: usize = 4;

/// Tiles a [`tile32_rows`] tile's prefetches run ahead of the tile being computed.
const PREFETCH_TILES: usize = 2;

/// `out[i·len + j] = w_i · acts[first + j]` for the weight rows `w_i` that `w` holds back to
/// back (`len = out.len() / rows`), as [`dot_rows`] row by row. For a single activation row
/// (a decode step) of the 32-value formats it takes four weight rows at a time
/// ([`tile32_rows`]). Does nothing unless the sizes fit.
pub fn dot_tile(format: WeightFormat, w: &[u8], acts: &Acts, first: usize, out: &mut [f32]) {
    let row_bytes = acts.blocks_per_row() * format.block_bytes();
    let rows = w.len().checked_div(row_bytes).unwrap_or(0);
    let len = out.len().checked_div(rows).unwrap_or(0);
    if len == 0 || rows * row_bytes != w.len() || rows * len != out.len() {
        return;
    }
    let short = matches!(
        format,
        WeightFormat::Q4_0 | WeightFormat::Q5_0 | WeightFormat::Q8_0
    );
    let mut i = 0;
    if len == 1 && short && sized(format, &w[..row_bytes], acts, first, &out[..1]) {
        while i + TILE_W <= rows {
            let p = w[i * row_bytes..].as_ptr();
            // SAFETY: rows `i..i + TILE_W` lie in `w` and the activation row exists (checked
            // above); this module is compiled only for targets with AVX2 and FMA.
            let res = unsafe {
                match format {
                    WeightFormat::Q4_0 => tile32_rows::<Q4_0, TILE_W>(p, row_bytes, acts, first),
                    WeightFormat::Q5_0 => tile32_rows::<Q5_0, TILE_W>(p, row_bytes, acts, first),
                    _ => tile32_rows::<Q8_0, TILE_W>(p, row_bytes, acts, first),
                }
            };
            out[i..i + TILE_W].copy_from_slice(&res);
            i += TILE_W;
        }
    }
    for (w, out) in w
        .chunks_exact(row_bytes)
        .zip(out.chunks_exact_mut(len))
        .skip(i)
    {
        dot_rows(format, w, acts, first, out);
    }
}

/// [`tile32`] for one activation row and `W` weight rows, `row_bytes` apart from `w`: each
/// activation block is loaded once for the `W` rows, their sums overlap, and the weights are
/// prefetched [`PREFETCH_TILES`] tiles ahead (a row is a few hundred bytes: too short a stream
/// for the hardware prefetchers to keep up). Every row's operations are [`tile32`]'s, in the
/// same order, so the bits are equal.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile32_rows<const F: u8, const W: usize>(
    w: *const u8,
    row_bytes: usize,
    acts: &Acts,
    row: usize,
) -> [f32; W] {
    let nb = acts.blocks_per_row();
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); W];
    // SAFETY: the row exists (checked by the callers).
    let qs = unsafe { acts.qs.as_ptr().add(row * acts.k) };
    // SAFETY: as above.
    let ds = unsafe { acts.d.as_ptr().add(row * nb) };
    for b in 0..nb {
        // SAFETY: block `b` of the activation row (checked by the callers).
        let (a, da) = unsafe {
            (
                _mm256_loadu_si256(qs.add(b * 32) as *const __m256i),
                _mm256_broadcast_ss(&*ds.add(b)),
            )
        };
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: block `b` of weight row `i` lies in the rows the callers checked.
            let wb = unsafe { w.add(i * row_bytes + b * block_bytes(F)) };
            let ahead = wb.wrapping_add(PREFETCH_TILES * W * row_bytes);
            // A prefetch has no architectural effect and does not fault on any address.
            _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
            // SAFETY: inside the rows the callers checked; the CPU has the features.
            let dw = _mm256_set1_ps(unsafe { f16_at(wb) });
            // SAFETY: as above.
            let q = unsafe { decode32::<F>(wb) };
            let aq = _mm256_sign_epi8(q, q);
            let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(a, q)), ones);
            let d = _mm256_mul_ps(dw, da);
            *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), *acc);
        }
    }
    acc.map(|a| hsum_ps(a))
}

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
unsafe fn tile_k<const F: u8, const N: usize>(w: *const u8, acts: &Acts, row0: usize) -> [f32; N] {
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
