//! The AVX-512 form of [`super::f32_avx2`]'s micro-tile, used where nfai's AVX-512 kernel set
//! runs: two 8-column strips side by side in one 512-bit vector, so that one FMA takes sixteen
//! columns, up to [`ROWS`] rows × four strips per tile in the larger register file. Each output
//! value still starts from what the output holds and takes one FMA per input, in input order,
//! so the results are the AVX2 tile's bits.

use std::arch::x86_64::*;

use super::f32_avx2::{STRIP, Tile};
use crate::kernels::{Kernels, kernels};

/// Rows of a micro-tile: with two 512-bit vectors a row, 16 accumulators, the weights and a
/// broadcast fit the 32 vector registers.
pub(super) const ROWS: usize = 8;
/// Strips of a micro-tile (two per 512-bit vector).
pub(super) const STRIPS: usize = 4;

/// Whether the tiles take this form: the AVX-512 kernel set is in use (see [`kernels`]).
pub(super) fn enabled() -> bool {
    kernels() == Kernels::Avx512
}

/// Calls [`micro`] for `nr` rows (1..=[`ROWS`]) and `ns` strips (2 or 4).
///
/// # Safety
/// As [`micro`].
pub(super) unsafe fn micro_dispatch(nr: usize, ns: usize, t: &Tile) {
    macro_rules! pick {
        ($($r:literal),*) => {
            match (nr, ns) {
                $(
                    // SAFETY: the caller upholds `micro`'s contract (ours).
                    ($r, 2) => unsafe { micro::<$r, 1>(t) },
                    // SAFETY: the caller upholds `micro`'s contract (ours).
                    ($r, 4) => unsafe { micro::<$r, 2>(t) },
                )*
                _ => unreachable!("micro-tile {nr}×{ns}"),
            }
        };
    }
    pick!(1, 2, 3, 4, 5, 6, 7, 8)
}

/// `R` rows × `2V` strips of `c` += `a · b` over `t.kc` inputs, accumulators in registers.
///
/// # Safety
/// [`enabled`] holds (the CPU has AVX-512 F and DQ); `t.a` holds `R` rows of `t.kc` values,
/// `t.b` `2V` strips of `t.kc · 8` values, and `t.c` `R` rows of `16 V` floats, at their
/// strides.
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
unsafe fn micro<const R: usize, const V: usize>(t: &Tile) {
    // SAFETY: every pointer stays inside the extents the caller guarantees.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(t.c.add(r * t.ldc + 2 * v * STRIP));
            }
        }
        for p in 0..t.kc {
            let mut b = [_mm512_setzero_ps(); V];
            for (v, x) in b.iter_mut().enumerate() {
                let strip = t.b.add(2 * v * t.ldb + p * STRIP);
                *x = _mm512_insertf32x8::<1>(
                    _mm512_castps256_ps512(_mm256_loadu_ps(strip)),
                    _mm256_loadu_ps(strip.add(t.ldb)),
                );
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_ps(*t.a.add(r * t.lda + p));
                for (x, b) in row.iter_mut().zip(&b) {
                    *x = _mm512_fmadd_ps(a, *b, *x);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                _mm512_storeu_ps(t.c.add(r * t.ldc + 2 * v * STRIP), *x);
            }
        }
    }
}
