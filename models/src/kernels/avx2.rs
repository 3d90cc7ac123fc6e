//! AVX2 + FMA dot products of one quantised weight row with up to eight activation rows at a
//! time: each weight block is unpacked once and multiplied into every row of the tile, so
//! prefill and batched decode read the weights once per step. Results equal [`super::scalar`]'s
//! bit for bit (same integer sums, same float order).

use std::arch::x86_64::*;

use super::act::Acts;
use super::avx2_k::tile_k;
use super::format::WeightFormat;

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
