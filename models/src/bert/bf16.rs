//! The encoder's GEMM in BF16 on CPUs with AVX-512 BF16: weights rounded once to bf16 and
//! stored as pairs of consecutive input rows in 16-column strips, activations rounded per
//! pass, and products summed in f32 lanes by `vdpbf16ps`, which takes two products per lane
//! per instruction where an f32 FMA takes one.
//!
//! Rounding both operands to bf16 (8 significant bits) moves each embedding by about 1e-3 in
//! cosine distance at most; `NFAI_EMBED_BF16=0` keeps the f32 GEMM (see the README).

use std::arch::x86_64::*;

use crate::kernels::{Kernels, SyncPtr, kernels};

/// Output columns per strip: one 512-bit vector of f32 lanes.
pub(super) const STRIP: usize = 16;
/// Rows of a micro-tile.
const MR: usize = 6;
/// Strips of a micro-tile: with [`MR`], 24 accumulators.
const NR: usize = 4;
/// Input pairs per cache block: [`NR`] strips × 128 pairs × 64 bytes = 32 KiB, which stays in
/// L1 while every row of a tile passes over it.
const KC: usize = 128;

/// Whether the encoder's GEMMs run in BF16: the AVX-512 kernels are in use (see
/// [`kernels`]), the CPU has AVX-512 BF16, and [`super::reduced_allowed`] holds.
pub(super) fn enabled() -> bool {
    static ENABLED: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        kernels() == Kernels::Avx512
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
            && super::reduced_allowed()
    });
    *ENABLED
}

/// A `[k, n]` weight matrix in bf16: strip `s` holds columns `16s..16s + 16` as
/// `pairs × 16` words, word `(p, j)` packing rows `2p` (low half) and `2p + 1` (high half) of
/// column `16s + j`. An odd `k` gets a zero last row.
pub(super) struct Bf16Matrix {
    data: Vec<u32>,
    pairs: usize,
    n: usize,
}

impl Bf16Matrix {
    /// Packs the row-major `[k, n]` matrix `w`; `n` must be a multiple of [`STRIP`].
    pub(super) fn new(w: &[f32], k: usize, n: usize) -> Self {
        debug_assert!(n.is_multiple_of(STRIP) && w.len() == k * n);
        let pairs = k.div_ceil(2);
        let mut data = vec![0u32; pairs * n];
        for (s, strip) in data.chunks_exact_mut(pairs * STRIP).enumerate() {
            for (p, words) in strip.chunks_exact_mut(STRIP).enumerate() {
                for (j, word) in words.iter_mut().enumerate() {
                    let col = s * STRIP + j;
                    let lo = bf16_bits(w[2 * p * n + col]);
                    let hi = if 2 * p + 1 < k {
                        bf16_bits(w[(2 * p + 1) * n + col])
                    } else {
                        0
                    };
                    *word = u32::from(lo) | u32::from(hi) << 16;
                }
            }
        }
        Self { data, pairs, n }
    }

    /// Words per row of activations packed for this matrix.
    pub(super) fn pairs(&self) -> usize {
        self.pairs
    }

    pub(super) fn bytes(&self) -> usize {
        4 * self.data.len()
    }
}

/// `x` rounded to the nearest bf16 (ties to even), as the hardware conversion does for normal
/// numbers.
fn bf16_bits(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

/// Rounds `m` rows of `k` values (row-major `x`) to bf16 pairs, `pairs` words per row (a zero
/// high half after an odd `k`), on the compute pool. Needs [`enabled`].
pub(super) fn pack_rows(x: &[f32], m: usize, k: usize, pairs: usize) -> Vec<u32> {
    assert!(enabled() && x.len() == m * k && pairs == k.div_ceil(2));
    let mut out = vec![0u32; m * pairs];
    let dst = SyncPtr(out.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(m, |rows| {
        for r in rows {
            // SAFETY: row r of `out` belongs to this item alone; `enabled` checked the CPU.
            unsafe { pack_row(&x[r * k..][..k], dst.slice(r * pairs, pairs)) }
        }
    });
    out
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn pack_row(x: &[f32], out: &mut [u32]) {
    let dst = out.as_mut_ptr().cast::<u16>();
    for start in (0..2 * out.len()).step_by(16) {
        let left = x.len().saturating_sub(start).min(16);
        let mask = (1u32 << left).wrapping_sub(1) as u16;
        let to = (2 * out.len() - start).min(16);
        let store = (1u32 << to).wrapping_sub(1) as u16;
        // SAFETY: the masks limit the load to `x` and the store to `out`.
        unsafe {
            let v = _mm512_maskz_loadu_ps(mask, x.as_ptr().wrapping_add(start));
            let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
            _mm256_mask_storeu_epi16(dst.add(start).cast(), store, h);
        }
    }
}

/// `c[r][j] += Σ_i a[r][i] · w[i][c0 + j]` for `rows` rows and the columns `c0..c0 + cols`
/// (multiples of [`STRIP`]) of `w`, where `a` holds the rows packed by [`pack_rows`] and `c`
/// points at the output's element `(0, c0)` with row stride `ldc`.
///
/// # Safety
/// [`enabled`] holds; `c` is valid for `rows` rows of `cols` values at stride `ldc`, used by
/// no other thread meanwhile.
pub(super) unsafe fn gemm_tile(
    a: &[u32],
    rows: usize,
    w: &Bf16Matrix,
    c0: usize,
    cols: usize,
    c: *mut f32,
    ldc: usize,
) {
    assert!(c0.is_multiple_of(STRIP) && cols.is_multiple_of(STRIP) && c0 + cols <= w.n);
    assert!(a.len() >= rows * w.pairs);
    let strip_len = w.pairs * STRIP;
    for p0 in (0..w.pairs).step_by(KC) {
        let kc = KC.min(w.pairs - p0);
        for s in (0..cols / STRIP).step_by(NR) {
            let ns = NR.min(cols / STRIP - s);
            let b = w.data[(c0 / STRIP + s) * strip_len + p0 * STRIP..].as_ptr();
            for r in (0..rows).step_by(MR) {
                let nr = MR.min(rows - r);
                let tile = Tile {
                    a: a[r * w.pairs + p0..].as_ptr(),
                    lda: w.pairs,
                    b,
                    ldb: strip_len,
                    kc,
                    // SAFETY: element (r, 16s) of the caller's block.
                    c: unsafe { c.add(r * ldc + s * STRIP) },
                    ldc,
                };
                // SAFETY: `tile` lies inside `a`, `w` and the caller's block (checked above
                // and by the caller), and `enabled` checked the CPU.
                unsafe { micro_dispatch(nr, ns, &tile) }
            }
        }
    }
}

/// One micro-tile's operands: `kc` pairs of `a` rows (stride `lda` words) and of `b` strips
/// (stride `ldb` words), added to `c` (stride `ldc`).
struct Tile {
    a: *const u32,
    lda: usize,
    b: *const u32,
    ldb: usize,
    kc: usize,
    c: *mut f32,
    ldc: usize,
}

/// Calls [`micro`] for `nr` rows (1..=[`MR`]) and `ns` strips (1..=[`NR`]).
///
/// # Safety
/// As [`micro`].
unsafe fn micro_dispatch(nr: usize, ns: usize, t: &Tile) {
    macro_rules! pick {
        ($($r:literal),*) => {
            match (nr, ns) {
                $(
                    // SAFETY: the caller upholds `micro`'s contract (ours).
                    ($r, 1) => unsafe { micro::<$r, 1>(t) },
                    // SAFETY: the caller upholds `micro`'s contract (ours).
                    ($r, 2) => unsafe { micro::<$r, 2>(t) },
                    // SAFETY: the caller upholds `micro`'s contract (ours).
                    ($r, 3) => unsafe { micro::<$r, 3>(t) },
                    // SAFETY: the caller upholds `micro`'s contract (ours).
                    ($r, 4) => unsafe { micro::<$r, 4>(t) },
                )*
                _ => unreachable!("micro-tile {nr}×{ns}"),
            }
        };
    }
    pick!(1, 2, 3, 4, 5, 6)
}

/// `R` rows × `S` strips of `c` += `a · b` over `t.kc` pairs, accumulators in registers.
///
/// # Safety
/// The CPU has AVX-512 F and BF16; `t.a` holds `R` rows of `t.kc` words, `t.b` `S` strips of
/// `t.kc · 16` words, and `t.c` `R` rows of `16 S` floats, at their strides.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn micro<const R: usize, const S: usize>(t: &Tile) {
    // SAFETY: every pointer stays inside the extents the caller guarantees.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); S]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            for (s, v) in row.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(t.c.add(r * t.ldc + s * STRIP));
            }
        }
        for p in 0..t.kc {
            let mut b = [_mm512_setzero_si512(); S];
            for (s, v) in b.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(t.b.add(s * t.ldb + p * STRIP).cast());
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let a: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*t.a.add(r * t.lda + p) as i32));
                for (v, b) in row.iter_mut().zip(&b) {
                    *v = _mm512_dpbf16_ps(*v, a, std::mem::transmute::<__m512i, __m512bh>(*b));
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (s, v) in row.iter().enumerate() {
                _mm512_storeu_ps(t.c.add(r * t.ldc + s * STRIP), *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gemm_check::check_tiles;
    use super::*;

    #[test]
    fn bf16_gemm_equals_the_f32_product_on_exact_values() {
        if !enabled() {
            eprintln!("skipped: no AVX-512 BF16 on this CPU");
            return;
        }
        // The check's values (multiples of 1/4 in [-2, 2]) are exact in bf16 too.
        let shapes = [
            (1, 1, 16),
            (7, 5, 32),
            (13, 300, 80),
            (6, 257, 64),
            (20, 384, 112),
        ];
        check_tiles(&shapes, STRIP, |x, w, out, (m, k, n), c0, cols| {
            let packed = Bf16Matrix::new(w, k, n);
            let a = pack_rows(x, m, k, packed.pairs());
            // SAFETY: `out` is m × n and the block (0, c0)..(m, c0 + cols) lies inside it.
            unsafe { gemm_tile(&a, m, &packed, c0, cols, out.as_mut_ptr().add(c0), n) };
        });
    }

    #[test]
    fn bf16_packing_rounds_to_nearest_even() {
        if !enabled() {
            eprintln!("skipped: no AVX-512 BF16 on this CPU");
            return;
        }
        // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: it goes to 1 (even); 1 + 3·2^-8 goes up.
        let x = [1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, -2.5, 0.0, 7.0];
        let a = pack_rows(&x, 1, 5, 3);
        let half = |w: u32, hi: bool| f32::from_bits(if hi { w & 0xffff_0000 } else { w << 16 });
        let got = [
            half(a[0], false),
            half(a[0], true),
            half(a[1], false),
            half(a[1], true),
            half(a[2], false),
            half(a[2], true),
        ];
        assert_eq!(got, [1.0, 1.0 + 4.0 / 256.0, -2.5, 0.0, 7.0, 0.0]);
        let w = Bf16Matrix::new(&[1.0 + 1.0 / 256.0; 16], 1, 16);
        assert_eq!(w.data[0], 0x3f80);
    }
}
