//! [`DenseLinear`]: an encoder's linear layer on the CPU with dense weights, `act(x Wᵀ + b +
//! residual)` in tiles on the compute pool: bf16 through [`bf16::gemm_tile`] on CPUs with
//! AVX-512 BF16, 8-bit weights and activations through [`q4_avx2::gemm_tile`]'s 512-bit tile
//! on other CPUs that run nfai's AVX-512 kernels (VNNI), f32 through [`f32_avx2::gemm_tile`]
//! under nfai's AVX2 kernels, and f32 through the `gemm` crate elsewhere; and 4-bit weights
//! with 8-bit activations through [`q4_avx2::gemm_tile`] on CPUs with AVX2 and FMA. The BERT
//! encoder's layers and multilingual-e5's use it.

use super::encoder::Activation;
use super::math;
#[cfg(target_arch = "x86_64")]
use super::{bf16, f32_avx2, q4_avx2};
use crate::kernels::SyncPtr;

/// Rows of one GEMM tile: a tile's output (up to 128 × 768 f32 here) stays in L2 between the
/// product and the activation.
const TILE_ROWS: usize = 128;

/// How a linear layer holds `Wᵀ` (`[k, n]`).
enum Weights {
    /// Row-major f32, multiplied by the `gemm` crate.
    F32(Vec<f32>),
    /// f32 in strips, multiplied by [`f32_avx2::gemm_tile`].
    #[cfg(target_arch = "x86_64")]
    F32Strips(f32_avx2::PackedF32),
    /// Rounded to bf16 in strips, multiplied by [`bf16::gemm_tile`].
    #[cfg(target_arch = "x86_64")]
    Bf16(bf16::Bf16Matrix),
    /// Q4_0 values as bytes in strips, multiplied by [`q4_avx2::gemm_tile`].
    #[cfg(target_arch = "x86_64")]
    Q4Strips(q4_avx2::PackedQ),
    /// Quantised to 8 bits in strips, multiplied by [`q4_avx2::gemm_tile`]'s 512-bit tile.
    #[cfg(target_arch = "x86_64")]
    Q8Strips(q4_avx2::PackedQ),
}

/// `y = x Wᵀ + b`.
pub(crate) struct DenseLinear {
    weights: Weights,
    bias: Vec<f32>,
    k: usize,
    n: usize,
}

impl DenseLinear {
    /// The layer of the row-major `[k, n]` matrix `w` (`Wᵀ`) and `n` biases. When `reduced`
    /// is set and [`super::reduced_allowed`] holds: in bf16 where [`bf16::enabled`] holds and
    /// `n` is a multiple of 16, else in 8 bits where [`q4_avx2::PackedQ::from_f32_q8`] takes
    /// it. Otherwise in f32 strips where [`f32_avx2::enabled`] holds and `n` is a multiple of 8.
    pub(crate) fn new(w: Vec<f32>, k: usize, n: usize, bias: Vec<f32>, reduced: bool) -> Self {
        debug_assert_eq!((w.len(), bias.len()), (k * n, n));
        #[cfg(target_arch = "x86_64")]
        let q8 = || {
            (reduced && super::reduced_allowed())
                .then(|| q4_avx2::PackedQ::from_f32_q8(&w, k, n))
                .flatten()
        };
        #[cfg(target_arch = "x86_64")]
        let weights = if reduced && bf16::enabled() && n.is_multiple_of(bf16::STRIP) {
            Weights::Bf16(bf16::Bf16Matrix::new(&w, k, n))
        } else if let Some(q) = q8() {
            Weights::Q8Strips(q)
        } else if f32_avx2::enabled() && n.is_multiple_of(f32_avx2::STRIP) {
            Weights::F32Strips(f32_avx2::PackedF32::new(&w, k, n))
        } else {
            Weights::F32(w)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let weights = {
            let _ = reduced;
            Weights::F32(w)
        };
        Self {
            weights,
            bias,
            k,
            n,
        }
    }

    /// The layer of `n` weight rows of `k / 32` Q4_0 blocks each (`W`, one row per output)
    /// and `n` biases, multiplied with 8-bit activations; `None` unless the CPU has AVX2 and
    /// FMA, `n` is a multiple of 8 and `k` of 32.
    pub(crate) fn from_q4_0(blocks: &[u8], n: usize, k: usize, bias: Vec<f32>) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if f32_avx2::available() && bias.len() == n {
            return Some(Self {
                weights: Weights::Q4Strips(q4_avx2::PackedQ::from_q4_0(blocks, n, k)?),
                bias,
                k,
                n,
            });
        }
        let _ = (blocks, n, k, bias);
        None
    }

    /// Whether the weights are held in reduced precision (bf16 or 8 bits) from f32 ones.
    pub(crate) fn is_reduced(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return matches!(self.weights, Weights::Bf16(_) | Weights::Q8Strips(_));
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    pub(crate) fn bytes(&self) -> usize {
        let weights = match &self.weights {
            Weights::F32(w) => 4 * w.len(),
            #[cfg(target_arch = "x86_64")]
            Weights::Bf16(w) => w.bytes(),
            #[cfg(target_arch = "x86_64")]
            Weights::F32Strips(w) => w.bytes(),
            #[cfg(target_arch = "x86_64")]
            Weights::Q4Strips(w) | Weights::Q8Strips(w) => w.bytes(),
        };
        weights + 4 * self.bias.len()
    }

    /// `act(x Wᵀ + b + residual)` for `m` rows of `x`. The output's tiles (up to
    /// [`TILE_ROWS`] rows × one column block per compute thread) go to the compute pool; each
    /// starts as bias (+ residual), takes the product, then the activation.
    pub(crate) fn forward(
        &self,
        x: &[f32],
        m: usize,
        residual: Option<&[f32]>,
        act: Option<Activation>,
    ) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        debug_assert_eq!(x.len(), m * k);
        let mut out = vec![0f32; m * n];
        let parts = candle_core::utils::get_num_threads().clamp(1, n.div_ceil(16));
        let width = n.div_ceil(parts).div_ceil(16) * 16;
        let col_blocks = n.div_ceil(width);
        let row_blocks = m.div_ceil(TILE_ROWS);
        #[cfg(target_arch = "x86_64")]
        let packed = match &self.weights {
            Weights::Bf16(w) => bf16::pack_rows(x, m, k, w.pairs()),
            _ => Vec::new(),
        };
        #[cfg(target_arch = "x86_64")]
        let quantized = match &self.weights {
            Weights::Q4Strips(w) | Weights::Q8Strips(w) => {
                Some(q4_avx2::QuantRows::new(x, m, k, w.zero()))
            }
            _ => None,
        };
        let dst = SyncPtr(out.as_mut_ptr());
        candle_core::utils::barrier_pool().execute_chunked(row_blocks * col_blocks, |tiles| {
            for tile in tiles {
                let (r0, c0) = (tile / col_blocks * TILE_ROWS, tile % col_blocks * width);
                let (rows, cols) = (TILE_ROWS.min(m - r0), width.min(n - c0));
                for r in r0..r0 + rows {
                    // SAFETY: row r's columns c0..c0+cols lie in `out` and belong to this
                    // tile alone.
                    let row = unsafe { dst.slice(r * n + c0, cols) };
                    row.copy_from_slice(&self.bias[c0..c0 + cols]);
                    if let Some(res) = residual {
                        row.iter_mut()
                            .zip(&res[r * n + c0..])
                            .for_each(|(y, r)| *y += r);
                    }
                }
                let tile = dst.0.wrapping_add(r0 * n + c0);
                match &self.weights {
                    // SAFETY: the destination is `rows` rows of `cols` columns at row stride
                    // `n` from (r0, c0) inside `out`, written by this tile alone; `x` is
                    // `m × k` and `w` is `k × n`, both row-major, read from row r0 and
                    // column c0.
                    Weights::F32(w) => unsafe {
                        gemm::gemm(
                            rows,
                            cols,
                            k,
                            tile,
                            1,
                            n as isize,
                            true,
                            x.as_ptr().add(r0 * k),
                            1,
                            k as isize,
                            w.as_ptr().add(c0),
                            1,
                            n as isize,
                            1.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    },
                    // SAFETY: as above; `width` and `c0` are multiples of 16, as is `n` (a
                    // condition of the bf16 weights), so `cols` is too, and `packed` holds
                    // `m` rows.
                    #[cfg(target_arch = "x86_64")]
                    Weights::Bf16(w) => unsafe {
                        bf16::gemm_tile(&packed[r0 * w.pairs()..], rows, w, c0, cols, tile, n)
                    },
                    // SAFETY: as above; `width` and `c0` are multiples of 16 and `n` of 8 (a
                    // condition of the strips), so `cols` is a multiple of 8; `x` holds `m`
                    // rows of `k`.
                    #[cfg(target_arch = "x86_64")]
                    Weights::F32Strips(w) => unsafe {
                        f32_avx2::gemm_tile(&x[r0 * k..], k, rows, w, c0, cols, tile, n)
                    },
                    #[cfg(target_arch = "x86_64")]
                    Weights::Q4Strips(w) | Weights::Q8Strips(w) => {
                        if let Some(a) = &quantized {
                            // SAFETY: as above; `width` and `c0` are multiples of 16 and `n`
                            // of 8 (a condition of the strips; of 16 for 8-bit ones), so
                            // `cols` is a multiple of 8 (of 16); `a` holds the `m` rows of
                            // `x`; `from_q4_0` and `from_f32_q8` checked the CPU.
                            unsafe { q4_avx2::gemm_tile(a, r0, rows, w, c0, cols, tile, n) }
                        }
                    }
                }
                if let Some(act) = act {
                    for r in r0..r0 + rows {
                        // SAFETY: as above.
                        math::activate(act, unsafe { dst.slice(r * n + c0, cols) });
                    }
                }
            }
        });
        out
    }
}
