//! The check the CPU GEMM tiles' tests share: on values whose products and sums are exact in
//! f32 (multiples of 1/4 in [-2, 2]), a tile must equal the plain product to the bit, inside
//! its columns, and leave the rest of the output as it was.

/// One of 17 multiples of 1/4 in [-2, 2], from a linear congruential `seed`.
fn exact(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) % 17) as f32 / 4.0 - 2.0
}

/// For each `(m, k, n)` of `shapes` and each column block `(c0, cols)` (all of `n`, all but
/// the first `strip`, the first `strip`), calls `tile(x, w, out, shape, c0, cols)` with an
/// `m × k` input, a row-major `k × n` weight and an `m × n` output that starts as a bias, and
/// checks that the block became bias + `x·w` and the rest stayed the bias.
pub(super) fn check_tiles(
    shapes: &[(usize, usize, usize)],
    strip: usize,
    mut tile: impl FnMut(&[f32], &[f32], &mut [f32], (usize, usize, usize), usize, usize),
) {
    let mut seed = 7;
    for &(m, k, n) in shapes {
        let x: Vec<f32> = (0..m * k).map(|_| exact(&mut seed)).collect();
        let w: Vec<f32> = (0..k * n).map(|_| exact(&mut seed)).collect();
        let bias: Vec<f32> = (0..m * n).map(|_| exact(&mut seed)).collect();
        for (c0, cols) in [(0, n), (strip, n - strip), (0, strip)] {
            if cols == 0 {
                continue;
            }
            let mut got = bias.clone();
            tile(&x, &w, &mut got, (m, k, n), c0, cols);
            for r in 0..m {
                for j in 0..n {
                    let inside = (c0..c0 + cols).contains(&j);
                    let want = bias[r * n + j]
                        + if inside {
                            (0..k).map(|i| x[r * k + i] * w[i * n + j]).sum::<f32>()
                        } else {
                            0.0
                        };
                    assert_eq!(got[r * n + j], want, "{m}×{k}×{n} at ({r}, {j}), c0 {c0}");
                }
            }
        }
    }
}
