//! The encoders' f32 GEMM on AVX2 + FMA: weights packed once, at load, into 8-column strips,
//! so that a micro-tile of 6 rows × 16 columns keeps its 12 accumulators in registers, reads
//! the weights contiguously and broadcasts the activations straight from their rows. (The
//! `gemm` crate, which the other CPUs use, packs both operands again on every call.)
//!
//! Each output value starts from what the output holds (bias, residual) and takes one FMA per
//! input, in input order. Under the AVX-512 kernels, pairs of strips take the 512-bit tile of
//! [`super::f32_avx512`], which gives the same bits.

use std::arch::x86_64::*;

use crate::kernels::{Kernels, kernels};

/// Output columns per strip: one 256-bit vector of f32 lanes.
pub(super) const STRIP: usize = 8;
/// Rows of a micro-tile.
const MR: usize = 6;
/// Strips of a micro-tile: with [`MR`], 12 accumulators, and 2 weight vectors and a broadcast
/// beside them in the 16 registers.
const NR: usize = 2;
/// Input rows per cache block: [`NR`] strips × 256 rows × 32 bytes = 16 KiB, which stays in L1
/// while every row of a tile passes over it.
const KC: usize = 256;

/// Whether the CPU runs this module (AVX2 and FMA): attention uses it wherever it can.
pub(super) fn available() -> bool {
    static AVAILABLE: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    });
    *AVAILABLE
}

/// Whether the encoders' linear layers use this module for f32: nfai's AVX2 kernel set is in
/// use (see [`kernels`]; the AVX-512 sets run bf16 or the `gemm` crate's AVX-512 kernels).
pub(super) fn enabled() -> bool {
    kernels() == Kernels::Avx2 && available()
}

/// A `[k, n]` weight matrix in strips: strip `s` holds columns `8s..8s + 8` of every row,
/// row after row (`k × 8` values).
#[derive(Default)]
pub(super) struct PackedF32 {
    data: Vec<f32>,
    k: usize,
    n: usize,
}

impl PackedF32 {
    /// Packs the row-major `[k, n]` matrix `w`; `n` must be a multiple of [`STRIP`].
    pub(super) fn new(w: &[f32], k: usize, n: usize) -> Self {
        debug_assert!(n.is_multiple_of(STRIP) && w.len() == k * n);
        let mut data = vec![0f32; k * n];
        for (s, strip) in data.chunks_exact_mut(k * STRIP).enumerate() {
            for (i, row) in strip.chunks_exact_mut(STRIP).enumerate() {
                row.copy_from_slice(&w[i * n + s * STRIP..][..STRIP]);
            }
        }
        Self { data, k, n }
    }

    /// Packs the `[k, n]` matrix whose element `(i, j)` is `at(i, j)` in place of this one,
    /// reusing its memory; `n` must be a multiple of [`STRIP`].
    pub(super) fn fill(&mut self, k: usize, n: usize, at: impl Fn(usize, usize) -> f32) {
        debug_assert!(n.is_multiple_of(STRIP));
        self.data.resize(k * n, 0.0);
        for (s, strip) in self.data.chunks_exact_mut(k * STRIP).enumerate() {
            for (i, row) in strip.chunks_exact_mut(STRIP).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = at(i, s * STRIP + j);
                }
            }
        }
        (self.k, self.n) = (k, n);
    }

    pub(super) fn bytes(&self) -> usize {
        4 * self.data.len()
    }
}

/// `c[r][j] += Σ_i a[r][i] · w[i][c0 + j]` for `rows` rows of `a` (`w.k` values each, rows
/// `lda` apart) and the columns `c0..c0 + cols` (multiples of [`STRIP`]) of `w`, where `c`
/// points at the output's element `(0, c0)` with row stride `ldc`.
///
/// # Safety
/// [`available`] holds; `c` is valid for `rows` rows of `cols` values at stride `ldc`, used
/// by no other thread meanwhile.
#[allow(
    clippy::too_many_arguments,
    reason = "a BLAS-style tile: operands with their strides"
)]
pub(super) unsafe fn gemm_tile(
    a: &[f32],
    lda: usize,
    rows: usize,
    w: &PackedF32,
    c0: usize,
    cols: usize,
    c: *mut f32,
    ldc: usize,
) {
    let wide = super::f32_avx512::enabled();
    // SAFETY: the caller's contract, and `wide` only where the AVX-512 kernels run.
    unsafe { gemm_tile_with(wide, a, lda, rows, w, c0, cols, c, ldc) }
}

/// [`gemm_tile`], with tiles of whole strip pairs on the 512-bit tile where `wide`.
///
/// # Safety
/// As [`gemm_tile`], and where `wide`, the CPU runs the AVX-512 kernels
/// ([`super::f32_avx512::enabled`]).
#[allow(
    clippy::too_many_arguments,
    reason = "a BLAS-style tile: operands with their strides"
)]
unsafe fn gemm_tile_with(
    wide: bool,
    a: &[f32],
    lda: usize,
    rows: usize,
    w: &PackedF32,
    c0: usize,
    cols: usize,
    c: *mut f32,
    ldc: usize,
) {
    assert!(c0.is_multiple_of(STRIP) && cols.is_multiple_of(STRIP) && c0 + cols <= w.n);
    assert!(rows == 0 || (lda >= w.k && a.len() >= (rows - 1) * lda + w.k));
    let strip_len = w.k * STRIP;
    let strips = cols / STRIP;
    for p0 in (0..w.k).step_by(KC) {
        let kc = KC.min(w.k - p0);
        let mut s = 0;
        while s < strips {
            // Under the AVX-512 kernels, whole pairs of strips take the 512-bit tile.
            let ns = if wide && strips - s >= 2 {
                super::f32_avx512::STRIPS.min(strips - s) / 2 * 2
            } else {
                NR.min(strips - s)
            };
            let mr = if wide && ns.is_multiple_of(2) {
                super::f32_avx512::ROWS
            } else {
                MR
            };
            let b = w.data[(c0 / STRIP + s) * strip_len + p0 * STRIP..].as_ptr();
            for r in (0..rows).step_by(mr) {
                let tile = Tile {
                    a: a[r * lda + p0..].as_ptr(),
                    lda,
                    b,
                    ldb: strip_len,
                    kc,
                    // SAFETY: element (r, 8s) of the caller's block.
                    c: unsafe { c.add(r * ldc + s * STRIP) },
                    ldc,
                };
                // SAFETY: `tile` lies inside `a`, `w` and the caller's block (checked above
                // and by the caller), and `enabled` checked the CPU (the AVX-512 kernels
                // where `wide`).
                unsafe {
                    if wide && ns.is_multiple_of(2) {
                        super::f32_avx512::micro_dispatch(mr.min(rows - r), ns, &tile)
                    } else {
                        micro_dispatch(mr.min(rows - r), ns, &tile)
                    }
                }
            }
            s += ns;
        }
    }
}

/// One micro-tile's operands: `kc` inputs of `a` rows (stride `lda`) and of `b` strips
/// (stride `ldb`, 8 values an input), added to `c` (stride `ldc`).
pub(super) struct Tile {
    pub(super) a: *const f32,
    pub(super) lda: usize,
    pub(super) b: *const f32,
    pub(super) ldb: usize,
    pub(super) kc: usize,
    pub(super) c: *mut f32,
    pub(super) ldc: usize,
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
                )*
                _ => unreachable!("micro-tile {nr}×{ns}"),
            }
        };
    }
    pick!(1, 2, 3, 4, 5, 6)
}

/// `R` rows × `S` strips of `c` += `a · b` over `t.kc` inputs, accumulators in registers.
///
/// # Safety
/// The CPU has AVX2 and FMA; `t.a` holds `R` rows of `t.kc` values, `t.b` `S` strips of
/// `t.kc · 8` values, and `t.c` `R` rows of `8 S` floats, at their strides.
#[target_feature(enable = "avx2,fma")]
unsafe fn micro<const R: usize, const S: usize>(t: &Tile) {
    // SAFETY: every pointer stays inside the extents the caller guarantees.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); S]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            for (s, v) in row.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(t.c.add(r * t.ldc + s * STRIP));
            }
        }
        for p in 0..t.kc {
            let mut b = [_mm256_setzero_ps(); S];
            for (s, v) in b.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(t.b.add(s * t.ldb + p * STRIP));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let a = _mm256_broadcast_ss(&*t.a.add(r * t.lda + p));
                for (v, b) in row.iter_mut().zip(&b) {
                    *v = _mm256_fmadd_ps(a, *b, *v);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (s, v) in row.iter().enumerate() {
                _mm256_storeu_ps(t.c.add(r * t.ldc + s * STRIP), *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gemm_check::check_tiles;
    use super::*;

    #[test]
    fn packed_gemm_equals_the_f32_product() {
        if !available() {
            eprintln!("skipped: no AVX2 and FMA on this CPU");
            return;
        }
        let shapes = [
            (1, 1, 8),
            (7, 5, 24),
            (13, 300, 40),
            (6, 257, 64),
            (20, 600, 112),
        ];
        check_tiles(&shapes, STRIP, |x, w, out, (m, k, n), c0, cols| {
            let packed = PackedF32::new(w, k, n);
            // SAFETY: `out` is m × n and the block (0, c0)..(m, c0 + cols) lies inside it.
            unsafe { gemm_tile(x, k, m, &packed, c0, cols, out.as_mut_ptr().add(c0), n) };
        });
    }

    #[test]
    fn the_512_bit_tile_gives_the_avx2_tiles_bits() {
        if !super::super::f32_avx512::enabled() {
            eprintln!("skipped: the AVX-512 kernels do not run on this CPU");
            return;
        }
        for (m, k, n) in [(1, 1, 8), (9, 300, 40), (17, 600, 112), (6, 32, 512)] {
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 7919 % 997) as f32 - 498.0) / 97.0)
                .collect();
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 104_729 % 991) as f32 - 495.0) / 89.0)
                .collect();
            let packed = PackedF32::new(&w, k, n);
            let run = |wide: bool| {
                let mut out: Vec<f32> = (0..m * n).map(|i| i as f32 * 0.25).collect();
                // SAFETY: the whole of `out`; `wide` only where the AVX-512 kernels run.
                unsafe { gemm_tile_with(wide, &x, k, m, &packed, 0, n, out.as_mut_ptr(), n) };
                out
            };
            let (narrow, wide) = (run(false), run(true));
            for (i, (a, b)) in narrow.iter().zip(&wide).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{m}×{k}×{n} at {i}: {a} vs {b}");
            }
        }
    }
}
