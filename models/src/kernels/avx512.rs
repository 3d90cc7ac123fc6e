//! AVX-512 (F, BW, DQ, VL, VNNI) forms of the [`super::avx2`] tiles, picked at run time on CPUs that
//! have them: integer sums over 64 values per instruction (`vpmaddubsw` + `vpdpwssd` for the
//! K-quants, `vpdpbusd` for 32-value blocks), two activation rows per 512-bit float vector.
//! Integer sums are exact whatever their grouping, and every float operation is the one the
//! AVX2 kernels do, lane for lane, so results equal [`super::scalar`]'s bit for bit.

use std::arch::x86_64::*;

use super::act::Acts;
use super::avx2::{
    Q4_0, Q4K, Q5_0, Q5K, Q6K, Q8_0, block_bytes, by_format, decode32, f16_at, hsum_ps, sized,
    tiled_rows,
};
use super::avx2_k::{KTile, decode_k_chunk, k_block};
use super::format::WeightFormat;

/// Whether this CPU runs these kernels (asked once).
pub fn available() -> bool {
    static AVAILABLE: std::sync::LazyLock<bool> = std::sync::LazyLock::new(detect);
    *AVAILABLE
}

fn detect() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// `out[j] = w · acts[first + j]`, as [`super::avx2::dot_rows`]. Does nothing unless `w` holds
/// one row of `acts.k` weights, the rows exist and [`available`] holds.
pub fn dot_rows(format: WeightFormat, w: &[u8], acts: &Acts, first: usize, out: &mut [f32]) {
    if !sized(format, w, acts, first, out) || !available() {
        return;
    }
    // SAFETY: the sizes and the CPU's features were checked above.
    unsafe { by_format!(rows, format, w, acts, first, out) }
}

/// Weight rows per tile of the 32-value formats: each activation pair's bytes serve four rows.
const TILE_W: usize = 4;

/// `out[i·len + j] = w_i · acts[first + j]` for the weight rows `w_i` that `w` holds back to
/// back, `len = out.len() / rows`: [`dot_rows`] for each row, with the 32-value formats four
/// weight rows at a time. Does nothing unless the sizes fit and [`available`] holds.
pub fn dot_tile(format: WeightFormat, w: &[u8], acts: &Acts, first: usize, out: &mut [f32]) {
    let row_bytes = acts.blocks_per_row() * format.block_bytes();
    if row_bytes == 0 || !w.len().is_multiple_of(row_bytes) {
        return;
    }
    let wn = w.len() / row_bytes;
    if wn == 0 || !out.len().is_multiple_of(wn) {
        return;
    }
    let len = out.len() / wn;
    if !sized(format, &w[..row_bytes], acts, first, &out[..len]) || !available() {
        return;
    }
    let mut i = 0;
    if format.block_len() == 32 && format != WeightFormat::Q4_1 {
        while i + TILE_W <= wn {
            let (w, out) = (
                &w[i * row_bytes..(i + TILE_W) * row_bytes],
                &mut out[i * len..(i + TILE_W) * len],
            );
            // SAFETY: the sizes and the CPU's features were checked above.
            unsafe {
                match format {
                    WeightFormat::Q4_0 => rows_w::<Q4_0, TILE_W>(w, row_bytes, acts, first, out),
                    WeightFormat::Q5_0 => rows_w::<Q5_0, TILE_W>(w, row_bytes, acts, first, out),
                    _ => rows_w::<Q8_0, TILE_W>(w, row_bytes, acts, first, out),
                }
            }
            i += TILE_W;
        }
    }
    for i in i..wn {
        dot_rows(
            format,
            &w[i * row_bytes..(i + 1) * row_bytes],
            acts,
            first,
            &mut out[i * len..(i + 1) * len],
        );
    }
}

/// [`tile32`] over every activation row of `out` (`W` weight rows of `out.len() / W` each).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn rows_w<const F: u8, const W: usize>(
    w: &[u8],
    row_bytes: usize,
    acts: &Acts,
    first: usize,
    out: &mut [f32],
) {
    let len = out.len() / W;
    let mut j = 0;
    while j < len {
        let n = match len - j {
            8.. => 8,
            4..8 => 4,
            n => n,
        };
        // SAFETY: rows first + j .. first + j + n exist (checked by `dot_tile`).
        unsafe {
            match n {
                8 => put(
                    tile32::<F, 8, W>(w.as_ptr(), row_bytes, acts, first + j),
                    out,
                    len,
                    j,
                ),
                4 => put(
                    tile32::<F, 4, W>(w.as_ptr(), row_bytes, acts, first + j),
                    out,
                    len,
                    j,
                ),
                3 => put(
                    tile32::<F, 3, W>(w.as_ptr(), row_bytes, acts, first + j),
                    out,
                    len,
                    j,
                ),
                2 => put(
                    tile32::<F, 2, W>(w.as_ptr(), row_bytes, acts, first + j),
                    out,
                    len,
                    j,
                ),
                _ => put(
                    tile32::<F, 1, W>(w.as_ptr(), row_bytes, acts, first + j),
                    out,
                    len,
                    j,
                ),
            }
        }
        j += n;
    }
}

/// Writes weight row `i`'s results for activation rows `j..j + N` to `out[i·len + j..]`.
#[inline]
fn put<const N: usize, const W: usize>(res: [[f32; N]; W], out: &mut [f32], len: usize, j: usize) {
    for (i, r) in res.iter().enumerate() {
        out[i * len + j..i * len + j + N].copy_from_slice(r);
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn rows<const F: u8>(w: &[u8], acts: &Acts, first: usize, out: &mut [f32]) {
    tiled_rows!(tile, F, w, acts, first, out);
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile<const F: u8, const N: usize>(w: &[u8], acts: &Acts, row0: usize, out: &mut [f32]) {
    // SAFETY: inside the rows `sized` checked; the CPU has the features.
    let res = unsafe {
        if F <= Q8_0 {
            tile32::<F, N, 1>(w.as_ptr(), 0, acts, row0)[0]
        } else {
            tile_k::<F, N>(w.as_ptr(), acts, row0)
        }
    };
    out[..N].copy_from_slice(&res);
}

/// `[lo, hi]` as one vector.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
fn join(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
}

/// The sum of the two 256-bit halves.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
fn fold256(z: __m512i) -> __m256i {
    _mm256_add_epi32(_mm512_castsi512_si256(z), _mm512_extracti64x4_epi64(z, 1))
}

/// The sum of the four 128-bit quarters.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
fn fold128(z: __m512i) -> __m128i {
    let y = fold256(z);
    _mm_add_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1))
}

/// The totals of four vectors, lane `s` of the result for `p[s]`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
fn sum4(p: [__m512i; 4]) -> __m128i {
    // Per 128-bit lane: [p0, p1, p0, p1] partial sums, then [p0, p1, p2, p3].
    let u01 = _mm512_add_epi32(
        _mm512_unpacklo_epi32(p[0], p[1]),
        _mm512_unpackhi_epi32(p[0], p[1]),
    );
    let u23 = _mm512_add_epi32(
        _mm512_unpacklo_epi32(p[2], p[3]),
        _mm512_unpackhi_epi32(p[2], p[3]),
    );
    let v = _mm512_add_epi32(
        _mm512_unpacklo_epi64(u01, u23),
        _mm512_unpackhi_epi64(u01, u23),
    );
    fold128(v)
}

/// Tiles a weight tile's prefetches run ahead of the tile being computed.
const PREFETCH_TILES: usize = 2;

/// Asks for the line `PREFETCH_TILES` tiles of `tile_bytes` past `p` (the same place in a
/// later tile's rows). A tile reads its `W` rows side by side, a few hundred bytes each: too
/// short a stream for some CPUs' prefetchers (AMD Zen 5 among them), which then leave decode
/// waiting on memory. A prefetch never faults, so the address may lie past the weights.
#[inline(always)]
fn prefetch_ahead(p: *const u8, tile_bytes: usize) {
    let at = p.wrapping_add(PREFETCH_TILES * tile_bytes);
    // SAFETY: a prefetch has no architectural effect and does not fault on any address.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast()) }
}

/// Q4_0/Q5_0/Q8_0 for `W` weight rows (`row_bytes` apart from `w`) and `N` activation rows:
/// per block, `acc += (dw·da)·Σ₄ q·a` in eight float lanes per pair of rows, as the AVX2 kernel.
/// Activation rows go in pairs, one per 256-bit half, and each pair's bytes are loaded once for
/// all `W` weight rows. `vpdpbusd` multiplies unsigned by signed bytes: the activations are
/// offset by 128 (`a ^ 0x80`) and each lane starts from `-128·Σ₄ q`, so the sums stay exact.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile32<const F: u8, const N: usize, const W: usize>(
    w: *const u8,
    row_bytes: usize,
    acts: &Acts,
    row0: usize,
) -> [[f32; N]; W] {
    if N == 1 {
        // SAFETY: inside the rows `sized` checked; the CPU has the features.
        let one = unsafe { tile32_one::<F, W>(w, row_bytes, acts, row0) };
        let mut out = [[0f32; N]; W];
        for (o, v) in out.iter_mut().zip(one) {
            o[0] = v;
        }
        return out;
    }
    let nb = acts.blocks_per_row();
    let zero = _mm512_setzero_si512();
    let offset = _mm512_set1_epi8(0x80_u8 as i8);
    // Rows 2p and 2p+1 of weight row i in the halves of `acc[i][p]`; an odd last row in `last`.
    let mut acc = [[_mm512_setzero_ps(); 4]; W];
    let mut last = [_mm256_setzero_ps(); W];
    let mut qs = [std::ptr::null::<i8>(); N];
    let mut ds = [std::ptr::null::<f32>(); N];
    for r in 0..N {
        // SAFETY: rows row0..row0+N exist (checked by the callers).
        qs[r] = unsafe { acts.qs.as_ptr().add((row0 + r) * acts.k) };
        // SAFETY: inside the rows `sized` checked; the CPU has the features.
        ds[r] = unsafe { acts.d.as_ptr().add((row0 + r) * nb) };
    }
    for b in 0..nb {
        let mut a = [zero; 4];
        let mut da = [_mm512_setzero_ps(); 4];
        for p in 0..N / 2 {
            let (r0, r1) = (2 * p, 2 * p + 1);
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            unsafe {
                a[p] = _mm512_xor_si512(
                    join(
                        _mm256_loadu_si256(qs[r0].add(b * 32) as *const __m256i),
                        _mm256_loadu_si256(qs[r1].add(b * 32) as *const __m256i),
                    ),
                    offset,
                );
                da[p] = _mm512_insertf32x8(
                    _mm512_castps256_ps512(_mm256_broadcast_ss(&*ds[r0].add(b))),
                    _mm256_broadcast_ss(&*ds[r1].add(b)),
                    1,
                );
            }
        }
        let (a_last, da_last) = if N % 2 == 1 {
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            unsafe {
                (
                    _mm256_xor_si256(
                        _mm256_loadu_si256(qs[N - 1].add(b * 32) as *const __m256i),
                        _mm512_castsi512_si256(offset),
                    ),
                    _mm256_broadcast_ss(&*ds[N - 1].add(b)),
                )
            }
        } else {
            (_mm256_setzero_si256(), _mm256_setzero_ps())
        };
        for i in 0..W {
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let wb = unsafe { w.add(i * row_bytes + b * block_bytes(F)) };
            prefetch_ahead(wb, W * row_bytes);
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let dw = unsafe { f16_at(wb) };
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let q = _mm512_broadcast_i64x4(unsafe { decode32::<F>(wb) });
            let corr = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, offset, q));
            for p in 0..N / 2 {
                let dot = _mm512_dpbusd_epi32(corr, a[p], q);
                // `dw · da` in f32 for each row's half.
                let d = _mm512_mul_ps(_mm512_set1_ps(dw), da[p]);
                acc[i][p] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc[i][p]);
            }
            if N % 2 == 1 {
                let dot = _mm256_dpbusd_epi32(
                    _mm512_castsi512_si256(corr),
                    a_last,
                    _mm512_castsi512_si256(q),
                );
                let d = _mm256_mul_ps(_mm256_set1_ps(dw), da_last);
                last[i] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), last[i]);
            }
        }
    }
    let mut out = [[0f32; N]; W];
    for i in 0..W {
        for (r, o) in out[i].iter_mut().enumerate() {
            *o = if N % 2 == 1 && r == N - 1 {
                hsum_ps(last[i])
            } else if r % 2 == 0 {
                hsum_ps(_mm512_castps512_ps256(acc[i][r / 2]))
            } else {
                hsum_ps(_mm512_extractf32x8_ps(acc[i][r / 2], 1))
            };
        }
    }
    out
}

/// [`tile32`] for one activation row (a decode step): 256-bit, with `vpdpbusd` on `|q|` and the
/// activations given `q`'s signs, as the AVX2 kernel's `maddubs` pair.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile32_one<const F: u8, const W: usize>(
    w: *const u8,
    row_bytes: usize,
    acts: &Acts,
    row: usize,
) -> [f32; W] {
    let nb = acts.blocks_per_row();
    // SAFETY: the row exists (checked by the callers).
    let qs = unsafe { acts.qs.as_ptr().add(row * acts.k) };
    // SAFETY: inside the rows `sized` checked; the CPU has the features.
    let ds = unsafe { acts.d.as_ptr().add(row * nb) };
    let mut acc = [_mm256_setzero_ps(); W];
    for b in 0..nb {
        // SAFETY: inside the rows `sized` checked; the CPU has the features.
        let a = unsafe { _mm256_loadu_si256(qs.add(b * 32) as *const __m256i) };
        // SAFETY: inside the rows `sized` checked; the CPU has the features.
        let da = unsafe { _mm256_broadcast_ss(&*ds.add(b)) };
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let wb = unsafe { w.add(i * row_bytes + b * block_bytes(F)) };
            prefetch_ahead(wb, W * row_bytes);
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let dw = unsafe { f16_at(wb) };
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let q = unsafe { decode32::<F>(wb) };
            let dot = _mm256_dpbusd_epi32(
                _mm256_setzero_si256(),
                _mm256_sign_epi8(q, q),
                _mm256_sign_epi8(a, q),
            );
            let d = _mm256_mul_ps(_mm256_set1_ps(dw), da);
            *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), *acc);
        }
    }
    acc.map(|a| hsum_ps(a))
}

/// Q4K/Q5K/Q6K: the integer sums of 64 values (two 32-value chunks) per instruction and row,
/// then the AVX2 kernel's float epilogue ([`KTile`]).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile_k<const F: u8, const N: usize>(w: *const u8, acts: &Acts, row0: usize) -> [f32; N] {
    let nb = acts.blocks_per_row();
    let mut tile = KTile::<N>::new::<F>(acts, row0);
    let split = tile.split();
    for b in 0..nb {
        // SAFETY: inside the rows `sized` checked; the CPU has the features.
        let wb = unsafe { w.add(b * block_bytes(F)) };
        // SAFETY: one whole block of `w` (checked by `dot_rows`).
        let kb = k_block::<F>(unsafe { std::slice::from_raw_parts(wb, block_bytes(F)) });
        let mut sums = [_mm512_setzero_si512(); N];
        let mut parts = [_mm_setzero_si128(); N];
        // The 64-value pairs of 32-value chunks and their scales.
        let mut q = [_mm512_setzero_si512(); 4];
        let mut sc = [_mm512_setzero_si512(); 4];
        for s in 0..4 {
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            q[s] = unsafe {
                join(
                    decode_k_chunk::<F>(wb, 2 * s),
                    decode_k_chunk::<F>(wb, 2 * s + 1),
                )
            };
            sc[s] = join(kb.sc[2 * s], kb.sc[2 * s + 1]);
        }
        for (r, (sum, part)) in sums.iter_mut().zip(parts.iter_mut()).enumerate() {
            // SAFETY: inside the rows `sized` checked; the CPU has the features.
            let a = unsafe { acts.qs.as_ptr().add(((row0 + r) * nb + b) * 256) };
            let mut p = [_mm512_setzero_si512(); 4];
            for s in 0..4 {
                // SAFETY: inside the rows `sized` checked; the CPU has the features.
                let a = unsafe { _mm512_loadu_si512(a.add(64 * s) as *const _) };
                let prod = _mm512_maddubs_epi16(q[s], a);
                if split {
                    p[s] = _mm512_madd_epi16(prod, sc[s]);
                } else {
                    *sum = _mm512_dpwssd_epi32(*sum, prod, sc[s]);
                }
            }
            if split {
                *part = sum4(p);
            }
        }
        let mut folded = [_mm256_setzero_si256(); N];
        for (f, s) in folded.iter_mut().zip(sums) {
            *f = fold256(s);
        }
        // SAFETY: inside the rows `sized` checked; the CPU has the features.
        unsafe { tile.add_block::<F>(&kb, &folded, &parts, acts, row0, b) };
    }
    tile.finish::<F>(acts, row0)
}
