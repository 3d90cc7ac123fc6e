//! Tests of the encoders' 8-bit tiles: Q4_0 and 8-bit weights against the f64 product of the
//! quantised operands, the 512-bit tile against the AVX2 one bit for bit, and the activations'
//! quantisation.

use super::*;

/// Q4_0 blocks of `n` rows of `k` pseudo-random weights, and the same weights expanded.
fn weights(n: usize, k: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 33) as u32
    };
    let mut blocks = Vec::new();
    let mut dense = vec![0f32; n * k];
    for row in 0..n {
        for b in 0..k / QK {
            let d = half::f16::from_f32(0.01 + (next() % 100) as f32 / 1000.0);
            blocks.extend(d.to_bits().to_le_bytes());
            let qs: Vec<u8> = (0..QK).map(|_| (next() % 16) as u8).collect();
            for i in 0..QK / 2 {
                blocks.push(qs[i] | (qs[i + QK / 2] << 4));
            }
            for (i, &q) in qs.iter().enumerate() {
                dense[row * k + b * QK + i] = (f32::from(q) - 8.0) * d.to_f32();
            }
        }
    }
    (blocks, dense)
}

/// One output of a tile test, computed in f64: the product of the quantised operands
/// (`want`), of the unquantised ones (`exact`), the sum of the products' magnitudes, and
/// how far quantisation may move the exact product.
#[derive(Clone, Copy, Default)]
struct Sums {
    want: f64,
    exact: f64,
    magnitude: f64,
    rounding: f64,
}

impl Sums {
    /// `got` equals the quantised product to `tol` (relative to the magnitude), and the
    /// exact one within the rounding bound.
    fn check(&self, at: &str, got: f64, tol: f64) {
        let Self {
            want,
            exact,
            magnitude,
            rounding,
        } = *self;
        assert!(
            (got - want).abs() <= tol * (1.0 + magnitude),
            "{at}: {got} vs {want}"
        );
        assert!(
            (got - exact).abs() <= rounding + tol * (1.0 + magnitude),
            "{at}: {got} vs {exact}"
        );
    }
}

#[test]
fn q4_gemm_matches_the_quantised_product() {
    if !super::super::f32_avx2::available() {
        eprintln!("skipped: no AVX2 and FMA on this CPU");
        return;
    }
    for (m, k, n) in [(1, 32, 8), (4, 64, 24), (7, 384, 40), (13, 1536, 16)] {
        let (blocks, dense) = weights(n, k, (m * k * n) as u64);
        let w = PackedQ::from_q4_0(&blocks, n, k).expect("packs");
        let x: Vec<f32> = (0..m * k)
            .map(|i| {
                ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * if i % 97 == 0 { 20.0 } else { 1.0 }
            })
            .collect();
        let a = QuantRows::new(&x, m, k, 8);
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25).collect();
        let mut out: Vec<f32> = (0..m).flat_map(|_| bias.iter().copied()).collect();
        // Two column blocks and a row split, as the layers' tiles call it.
        let half = (n / STRIP / 2) * STRIP;
        for (c0, cols) in [(0, half), (half, n - half)] {
            for (r0, rows) in [(0, m / 2), (m / 2, m - m / 2)] {
                // SAFETY: the block (r0, c0)..(r0 + rows, c0 + cols) lies inside `out`.
                unsafe {
                    gemm_tile(
                        &a,
                        r0,
                        rows,
                        &w,
                        c0,
                        cols,
                        out.as_mut_ptr().add(r0 * n + c0),
                        n,
                    )
                };
            }
        }
        for r in 0..m {
            for j in 0..n {
                // The same product in f64 on the quantised activations.
                let mut sums = Sums {
                    want: f64::from(bias[j]),
                    exact: f64::from(bias[j]),
                    ..Sums::default()
                };
                for i in 0..k {
                    let blk = r * (k / QK) + i / QK;
                    let wi = f64::from(dense[j * k + i]);
                    let qa = f64::from(a.q[r * k + i]) * f64::from(a.scale[blk]);
                    sums.want += qa * wi;
                    sums.exact += f64::from(x[r * k + i]) * wi;
                    sums.magnitude += (qa * wi).abs();
                    // Rounding to 8 bits moves an activation by at most half its step.
                    sums.rounding += wi.abs() * f64::from(a.scale[blk]) / 2.0;
                }
                let at = format!("{m}×{k}×{n} ({r}, {j})");
                sums.check(&at, f64::from(out[r * n + j]), 1e-5);
            }
        }
    }
}

#[test]
fn q8_gemm_matches_the_quantised_product() {
    if !super::super::q4_avx512::enabled() {
        eprintln!("skipped: the AVX-512 kernels do not run on this CPU");
        assert!(PackedQ::from_f32_q8(&[0.0; 32 * 16], 32, 16).is_none());
        return;
    }
    for (m, k, n) in [(1, 32, 16), (9, 384, 48), (17, 1536, 32)] {
        // Row-major [k, n], with a few large values so that blocks' scales differ.
        let dense: Vec<f32> = (0..k * n)
            .map(|i| ((i * 6151 % 997) as f32 / 498.0 - 1.0) * if i % 89 == 0 { 8.0 } else { 0.1 })
            .collect();
        let w = PackedQ::from_f32_q8(&dense, k, n).expect("packs");
        assert_eq!(w.zero(), 128);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 3.0)
            .collect();
        let a = QuantRows::new(&x, m, k, w.zero());
        let mut out = vec![0f32; m * n];
        // SAFETY: the whole of `out`; the AVX-512 kernels run (checked above).
        unsafe { gemm_tile(&a, 0, m, &w, 0, n, out.as_mut_ptr(), n) };
        for r in 0..m {
            for j in 0..n {
                let mut sums = Sums {
                    exact: (0..k)
                        .map(|i| f64::from(x[r * k + i]) * f64::from(dense[i * n + j]))
                        .sum(),
                    ..Sums::default()
                };
                for b in 0..k / QK {
                    let col: Vec<f64> = (0..QK)
                        .map(|i| f64::from(dense[(b * QK + i) * n + j]))
                        .collect();
                    let dw = col.iter().fold(0f64, |m, v| m.max(v.abs())) / 127.0;
                    let da = f64::from(a.scale[r * (k / QK) + b]);
                    for (i, wi) in col.iter().enumerate() {
                        let qw = if dw > 0.0 {
                            (wi / dw).round() * dw
                        } else {
                            0.0
                        };
                        let xi = f64::from(x[r * k + b * QK + i]);
                        let qa = f64::from(a.q[r * k + b * QK + i]) * da;
                        sums.want += qa * qw;
                        sums.magnitude += (qa * qw).abs();
                        // Each operand moves by at most half its step.
                        sums.rounding += (wi.abs() * da + xi.abs() * dw) / 2.0 + da * dw / 4.0;
                    }
                }
                let at = format!("{m}×{k}×{n} ({r}, {j})");
                sums.check(&at, f64::from(out[r * n + j]), 1e-4);
            }
        }
    }
}

#[test]
fn the_512_bit_tile_gives_the_avx2_tiles_bits() {
    if !super::super::q4_avx512::enabled() {
        eprintln!("skipped: the AVX-512 kernels do not run on this CPU");
        return;
    }
    for (m, k, n) in [(1, 32, 16), (9, 384, 40), (17, 1536, 48)] {
        let (blocks, _) = weights(n, k, (m + k + n) as u64);
        let w = PackedQ::from_q4_0(&blocks, n, k).expect("packs");
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 3.0)
            .collect();
        let a = QuantRows::new(&x, m, k, 8);
        let run = |wide: bool| {
            let mut out: Vec<f32> = (0..m * n).map(|i| i as f32 * 0.5).collect();
            // SAFETY: the whole of `out`; `wide` only where the AVX-512 kernels run.
            unsafe { gemm_tile_with(wide, &a, 0, m, &w, 0, n, out.as_mut_ptr(), n) };
            out
        };
        let (narrow, wide) = (run(false), run(true));
        for (i, (x, y)) in narrow.iter().zip(&wide).enumerate() {
            assert_eq!(x.to_bits(), y.to_bits(), "{m}×{k}×{n} at {i}: {x} vs {y}");
        }
    }
}

#[test]
fn blocks_quantise_to_8_bits_of_their_largest_value() {
    if !super::super::f32_avx2::available() {
        eprintln!("skipped: no AVX2 and FMA on this CPU");
        return;
    }
    let x: Vec<f32> = (0..96)
        .map(|i| match i {
            0..32 => 0.0,
            32..64 => (((i * 37) % 61) as f32 - 30.0) * 0.173,
            _ => (i as f32 - 70.0) * 1e-3,
        })
        .collect();
    let (mut q, mut scale, mut offset) = (vec![0i8; 96], vec![0f32; 3], vec![0f32; 3]);
    quantize_row(&x, &mut q, &mut scale, &mut offset, 8.0);
    assert_eq!((scale[0], offset[0]), (0.0, 0.0));
    assert!(q[..32].iter().all(|&v| v == 0));
    for b in 1..3 {
        let (x, q) = (&x[b * 32..][..32], &q[b * 32..][..32]);
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_eq!(scale[b], amax / 127.0);
        for (&x, &q) in x.iter().zip(q) {
            assert!(
                (f32::from(q) - x / scale[b]).abs() <= 0.5 + 1e-4,
                "{x} → {q}"
            );
        }
        assert!(q.iter().any(|&v| v.abs() == 127));
        let sum: i32 = q.iter().map(|&v| i32::from(v)).sum();
        assert_eq!(offset[b], -8.0 * scale[b] * sum as f32);
    }
}

#[test]
fn odd_shapes_are_refused() {
    let (blocks, _) = weights(8, 64, 1);
    assert!(PackedQ::from_q4_0(&blocks, 8, 64).is_some());
    assert!(PackedQ::from_q4_0(&blocks, 16, 32).is_some());
    assert!(PackedQ::from_q4_0(&blocks, 4, 128).is_none());
    assert!(PackedQ::from_q4_0(&blocks[1..], 8, 64).is_none());
    assert!(PackedQ::from_q4_0(&blocks, 8, 48).is_none());
}
