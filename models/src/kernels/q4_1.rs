//! Q4_1 weight rows times Q8_1 activation rows, in the float order of ggml's x86
//! `ggml_vec_dot_q4_1_q8_1`: per 32-value block, the integer products of the unsigned nibbles
//! and the activation bytes summed in eight lanes of four, `acc += (dw · da) · lane` fused,
//! and `mins += m · s` fused (GCC contracts it); the result is `hsum(acc) + mins`.
//!
//! A block is 20 bytes: f16 scale `d`, f16 minimum `m`, then 16 bytes whose low nibbles are
//! values 0..16 and high nibbles values 16..32, each value being `d · q + m`.

use super::act::Acts;
use super::format::f16_at;
use super::scalar::hsum8;

/// Bytes per block.
const BLOCK_BYTES: usize = 20;

/// `out[j] = w · acts[first + j]` for one Q4_1 weight row `w`. Does nothing unless `w` holds
/// one row of `acts.k` weights and the Q8_1 rows exist.
pub fn dot_rows(w: &[u8], acts: &Acts, first: usize, out: &mut [f32]) {
    rows_with(
        super::kernels() == super::Kernels::Avx512,
        w,
        acts,
        first,
        out,
    );
}

/// [`dot_rows`], with the AVX-512 tiles where `avx512` asks for them and the CPU runs them.
fn rows_with(avx512: bool, w: &[u8], acts: &Acts, first: usize, out: &mut [f32]) {
    let nb = acts.blocks_per_row();
    if w.len() != nb * BLOCK_BYTES || !acts_sized(acts, first, out.len()) {
        return;
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    if super::kernels() != super::Kernels::Portable {
        let mut i = 0;
        if avx512 && super::avx512_runs() {
            while i + 8 <= out.len() {
                // SAFETY: the sizes were checked above and the CPU runs the AVX-512 kernels.
                let res = unsafe { super::q4_1_avx512::tile_pairs::<4, 8>(w, acts, first + i) };
                out[i..i + 8].copy_from_slice(&res);
                i += 8;
            }
            while i + 2 <= out.len() {
                // SAFETY: as above.
                let res = unsafe { super::q4_1_avx512::tile_pairs::<1, 2>(w, acts, first + i) };
                out[i..i + 2].copy_from_slice(&res);
                i += 2;
            }
        }
        while i + 4 <= out.len() {
            // SAFETY: the sizes were checked above; this code is compiled only for targets
            // with AVX2 and FMA.
            let res = unsafe { avx2::tile::<4>(w, acts, first + i) };
            out[i..i + 4].copy_from_slice(&res);
            i += 4;
        }
        for (j, o) in out.iter_mut().enumerate().skip(i) {
            // SAFETY: as above.
            *o = unsafe { avx2::tile::<1>(w, acts, first + j) }[0];
        }
        return;
    }
    for (j, o) in out.iter_mut().enumerate() {
        *o = dot_scalar(w, acts, first + j);
    }
}

/// Whether rows `first..first + n` exist in `acts`, quantised to Q8_1 with the sizes the
/// kernels index by.
fn acts_sized(acts: &Acts, first: usize, n: usize) -> bool {
    let nb = acts.blocks_per_row();
    acts.format == super::ActFormat::Q8_1
        && first + n <= acts.rows
        && acts.k == nb * 32
        && acts.qs.len() == acts.rows * acts.k
        && acts.d.len() == acts.rows * nb
        && acts.sums.len() == acts.rows * nb
}

/// Weight rows multiplied together against one activation row (a decode step).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
const TILE_W: usize = 4;

/// `out[i·len + j] = w_i · acts[first + j]` for the Q4_1 weight rows `w_i` that `w` holds back
/// to back (`len = out.len() / rows`), as [`dot_rows`] row by row, for the SIMD kernel sets. For a
/// single activation row (decode) it takes four weight rows at a time: each activation block is loaded
/// once for the four, their four independent sums overlap, and the weights are prefetched
/// ahead, so one thread streams the matrix instead of waiting on each row's short chain; with
/// `avx512` (the AVX-512 VNNI set, on a CPU that has it) two weight rows share each 512-bit
/// vector, and for several activation rows two activation rows do ([`super::q4_1_avx512`]).
/// Every row's float operations are [`dot_rows`]', in the same order, so the bits are equal.
pub fn dot_tile(avx512: bool, w: &[u8], acts: &Acts, first: usize, out: &mut [f32]) {
    let row_bytes = acts.blocks_per_row() * BLOCK_BYTES;
    let rows = w.len().checked_div(row_bytes).unwrap_or(0);
    let len = out.len().checked_div(rows).unwrap_or(0);
    if len == 0 || rows * row_bytes != w.len() || rows * len != out.len() {
        return;
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    if len == 1 && acts_sized(acts, first, 1) {
        let mut i = 0;
        while i + TILE_W <= rows {
            // SAFETY: rows `i..i + TILE_W` of `row_bytes` lie inside `w` and activation row
            // `first` exists (checked above); this code is compiled only for targets with AVX2
            // and FMA, and the AVX-512 tile runs only where `avx512_runs` found the CPU's
            // features.
            let res = unsafe {
                let w = w.as_ptr().add(i * row_bytes);
                if avx512 && super::avx512_runs() {
                    super::q4_1_avx512::tile_rows::<TILE_W>(w, row_bytes, acts, first)
                } else {
                    avx2::tile_rows::<TILE_W>(w, row_bytes, acts, first)
                }
            };
            out[i..i + TILE_W].copy_from_slice(&res);
            i += TILE_W;
        }
        for (w, o) in w.chunks_exact(row_bytes).zip(out.iter_mut()).skip(i) {
            // SAFETY: as above, for one row.
            *o = unsafe { avx2::tile::<1>(w, acts, first) }[0];
        }
        return;
    }
    for (w, out) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(len)) {
        rows_with(avx512, w, acts, first, out);
    }
}

/// The portable form: the reference the AVX2 form equals bit for bit.
pub fn dot_scalar(w: &[u8], acts: &Acts, row: usize) -> f32 {
    let nb = acts.blocks_per_row();
    let mut acc = [0f32; 8];
    let mut mins = 0f32;
    for b in 0..nb {
        let wb = &w[b * BLOCK_BYTES..(b + 1) * BLOCK_BYTES];
        let a = &acts.qs[(row * nb + b) * 32..][..32];
        let d = f16_at(wb, 0) * acts.d[row * nb + b];
        mins = f16_at(wb, 2).mul_add(acts.sums[row * nb + b], mins);
        for (lane, acc) in acc.iter_mut().enumerate() {
            let s: i32 = (0..4)
                .map(|t| {
                    let j = lane * 4 + t;
                    let q = if j < 16 {
                        wb[4 + j] & 0x0f
                    } else {
                        wb[4 + j - 16] >> 4
                    };
                    i32::from(q) * i32::from(a[j])
                })
                .sum();
            *acc = d.mul_add(s as f32, *acc);
        }
    }
    hsum8(acc) + mins
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Acts, BLOCK_BYTES};

    /// Rows `row0..row0 + N` of `acts` times the weight row `w`, each block unpacked once.
    ///
    /// # Safety
    /// `w` holds one row of `acts.k` Q4_1 weights, the rows exist in `acts` (Q8_1, with its
    /// sums), and the CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn tile<const N: usize>(w: &[u8], acts: &Acts, row0: usize) -> [f32; N] {
        let nb = acts.blocks_per_row();
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); N];
        let mut mins = [0f32; N];
        for b in 0..nb {
            // SAFETY: block `b` and rows `row0..row0 + N` lie inside `w` and
            // `acts` (the caller's contract).
            unsafe {
                let wb = w.as_ptr().add(b * BLOCK_BYTES);
                let dw = _mm256_set1_ps(super::super::avx2::f16_at(wb));
                let m = super::super::avx2::f16_at(wb.add(2));
                let t = _mm_loadu_si128(wb.add(4) as *const __m128i);
                let q = _mm256_and_si256(
                    _mm256_set_m128i(_mm_srli_epi16(t, 4), t),
                    _mm256_set1_epi8(0x0f),
                );
                for r in 0..N {
                    let i = (row0 + r) * nb + b;
                    let a = _mm256_loadu_si256(acts.qs.as_ptr().add(i * 32) as *const __m256i);
                    let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(q, a), ones);
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(*acts.d.get_unchecked(i)));
                    acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc[r]);
                    mins[r] = m.mul_add(*acts.sums.get_unchecked(i), mins[r]);
                }
            }
        }
        let mut out = [0f32; N];
        for ((o, a), m) in out.iter_mut().zip(acc).zip(mins) {
            *o = super::super::avx2::hsum_ps(a) + m;
        }
        out
    }

    /// Tiles a tile's prefetches run ahead of the tile being computed.
    const PREFETCH_TILES: usize = 2;

    /// [`tile`] for one activation row and `W` weight rows, `row_bytes` apart from `w`: the
    /// same operations per row and block, in the same order.
    ///
    /// # Safety
    /// `W` rows of `row_bytes` (one row of `acts.k` Q4_1 weights each) lie from `w`, activation
    /// row `row` exists in `acts` (Q8_1, with its sums, `acts.k` a multiple of 32), and the CPU
    /// has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn tile_rows<const W: usize>(
        w: *const u8,
        row_bytes: usize,
        acts: &Acts,
        row: usize,
    ) -> [f32; W] {
        let nb = acts.blocks_per_row();
        let ones = _mm256_set1_epi16(1);
        let low = _mm256_set1_epi8(0x0f);
        let mut acc = [_mm256_setzero_ps(); W];
        let mut mins = [0f32; W];
        for b in 0..nb {
            let i = row * nb + b;
            // SAFETY: block `b` of activation row `row` and of the `W` weight rows lie inside
            // `acts` and `w` (the caller's contract); a prefetch never faults.
            unsafe {
                let a = _mm256_loadu_si256(acts.qs.as_ptr().add(i * 32) as *const __m256i);
                let da = *acts.d.get_unchecked(i);
                let s = *acts.sums.get_unchecked(i);
                for r in 0..W {
                    let wb = w.add(r * row_bytes + b * BLOCK_BYTES);
                    let ahead = wb.wrapping_add(PREFETCH_TILES * W * row_bytes);
                    _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                    let dw = _mm256_set1_ps(super::super::avx2::f16_at(wb));
                    let m = super::super::avx2::f16_at(wb.add(2));
                    let t = _mm_loadu_si128(wb.add(4) as *const __m128i);
                    let q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), low);
                    let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(q, a), ones);
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(da));
                    acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc[r]);
                    mins[r] = m.mul_add(s, mins[r]);
                }
            }
        }
        let mut out = [0f32; W];
        for ((o, a), m) in out.iter_mut().zip(acc).zip(mins) {
            *o = super::super::avx2::hsum_ps(a) + m;
        }
        out
    }
}
