//! Kernel tests: every format's fast path against the scalar reference on random blocks, the
//! scalar reference against f64 products of dequantised weights, and batch independence.

use super::*;
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};

const FORMATS: [WeightFormat; 7] = [
    WeightFormat::Q4_0,
    WeightFormat::Q4_1,
    WeightFormat::Q5_0,
    WeightFormat::Q8_0,
    WeightFormat::Q4K,
    WeightFormat::Q5K,
    WeightFormat::Q6K,
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        (self.next() % 20_000) as f32 / 10_000.0 - 1.0
    }
}

/// Random block bytes with every f16 field set to a small finite scale.
fn random_row(format: WeightFormat, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let bytes = format.block_bytes();
    let mut row: Vec<u8> = (0..cols / format.block_len() * bytes)
        .map(|_| rng.next() as u8)
        .collect();
    for block in row.chunks_exact_mut(bytes) {
        let fields: &[usize] = match format {
            WeightFormat::Q4K | WeightFormat::Q5K | WeightFormat::Q4_1 => &[0, 2],
            WeightFormat::Q6K => &[208],
            _ => &[0],
        };
        for &at in fields {
            let d = half::f16::from_f32(0.001 + (rng.next() % 1000) as f32 * 1e-5);
            block[at..at + 2].copy_from_slice(&d.to_bits().to_le_bytes());
        }
    }
    row
}

fn to_ggml(format: WeightFormat) -> GgmlDType {
    match format {
        WeightFormat::Q4_0 => GgmlDType::Q4_0,
        WeightFormat::Q4_1 => GgmlDType::Q4_1,
        WeightFormat::Q5_0 => GgmlDType::Q5_0,
        WeightFormat::Q8_0 => GgmlDType::Q8_0,
        WeightFormat::Q4K => GgmlDType::Q4K,
        WeightFormat::Q5K => GgmlDType::Q5K,
        WeightFormat::Q6K => GgmlDType::Q6K,
    }
}

#[test]
fn fast_kernels_equal_the_scalar_reference_bit_for_bit() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let kernels = Kernels::available();
    for format in FORMATS {
        // Odd and even block counts.
        let widths: &[usize] = if format.block_len() == 32 {
            &[544, 512]
        } else {
            &[256, 512]
        };
        for &cols in widths {
            for rows in [1usize, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17] {
                let w = random_row(format, cols, &mut rng);
                let x: Vec<f32> = (0..rows * cols).map(|_| rng.f32() * 4.0).collect();
                let mut acts = Acts::quantize(format.act_format(), &x, rows, cols);
                // Every row in its own float order: the chunk orders of llama.cpp's kernels.
                acts.orders = (0..rows)
                    .map(|_| RowOrder {
                        q4k_groups: rng.next().is_multiple_of(2),
                        q6k_tiled: rng.next().is_multiple_of(2),
                    })
                    .collect();
                let mut slow = vec![0f32; rows];
                scalar::dot_rows(format, &w, &acts, 0, &mut slow);
                for &k in &kernels {
                    let mut fast = vec![f32::NAN; rows];
                    k.dot_rows(format, &w, &acts, 0, &mut fast);
                    let name = k.name();
                    assert_eq!(fast, slow, "{format:?} {cols} cols, {rows} rows ({name})");
                    if rows > 2 {
                        let mut part = vec![f32::NAN; rows - 2];
                        k.dot_rows(format, &w, &acts, 1, &mut part);
                        assert_eq!(part, slow[1..rows - 1], "{format:?} rows 1.. ({name})");
                    }
                }
            }
        }
    }
}

#[test]
fn weight_row_tiles_equal_the_scalar_reference_bit_for_bit() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for format in FORMATS {
        let cols = if format.block_len() == 32 { 544 } else { 512 };
        for wn in [1usize, 3, 4, 5, 8, 9] {
            let w: Vec<u8> = (0..wn)
                .flat_map(|_| random_row(format, cols, &mut rng))
                .collect();
            for rows in [1usize, 3, 8, 13] {
                let x: Vec<f32> = (0..(rows + 1) * cols).map(|_| rng.f32() * 4.0).collect();
                let acts = Acts::quantize(format.act_format(), &x, rows + 1, cols);
                let row_bytes = w.len() / wn;
                let mut slow = vec![0f32; wn * rows];
                for (wi, out) in w.chunks_exact(row_bytes).zip(slow.chunks_exact_mut(rows)) {
                    scalar::dot_rows(format, wi, &acts, 1, out);
                }
                for k in Kernels::available() {
                    let mut fast = vec![f32::NAN; wn * rows];
                    k.dot_tile(format, &w, &acts, 1, &mut fast);
                    let name = k.name();
                    assert_eq!(fast, slow, "{format:?} {wn} weight rows × {rows} ({name})");
                }
            }
        }
    }
}

#[test]
fn products_approximate_dequantised_weights() -> Result<()> {
    let dev = Device::Cpu;
    let mut rng = Rng(7);
    for format in FORMATS {
        let (n, k, m) = (24, 512, 3);
        let w = Tensor::randn(0f32, 1., (n, k), &dev)?;
        let qw = Arc::new(QTensor::quantize(&w, to_ggml(format))?);
        let wd = qw.dequantize(&dev)?.to_vec2::<f32>()?;
        let x: Vec<f32> = (0..m * k).map(|_| rng.f32()).collect();
        let qm = QMatrix::new(qw).ok_or_else(|| ModelError::Format("unsupported".into()))?;
        let y = qm.matmul(&x, m)?;
        for i in 0..m {
            for r in 0..n {
                let xi = &x[i * k..(i + 1) * k];
                let exact: f64 = xi.iter().zip(&wd[r]).map(|(a, b)| f64::from(a * b)).sum();
                let mag: f64 = xi
                    .iter()
                    .zip(&wd[r])
                    .map(|(a, b)| f64::from((a * b).abs()))
                    .sum();
                let got = f64::from(y[i * n + r]);
                assert!(
                    (got - exact).abs() <= 0.02 * mag + 1e-4,
                    "{format:?} [{i},{r}]: {got} vs {exact} (scale {mag})"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn rows_do_not_depend_on_the_rest_of_the_batch() -> Result<()> {
    let dev = Device::Cpu;
    let mut rng = Rng(99);
    for format in FORMATS {
        let (n, k, m) = (40, 256, 9);
        let w = Tensor::randn(0f32, 1., (n, k), &dev)?;
        let qm = QMatrix::new(Arc::new(QTensor::quantize(&w, to_ggml(format))?))
            .ok_or_else(|| ModelError::Format("unsupported".into()))?;
        let x: Vec<f32> = (0..m * k).map(|_| rng.f32()).collect();
        let all = qm.matmul(&x, m)?;
        for i in 0..m {
            let one = qm.matmul(&x[i * k..(i + 1) * k], 1)?;
            assert_eq!(
                &all[i * n..(i + 1) * n],
                one.as_slice(),
                "{format:?} row {i}"
            );
        }
        let t = Tensor::from_vec(x.clone(), (m, k), &dev)?;
        let through_candle = qm.forward(&t)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(through_candle, all);
    }
    Ok(())
}

#[test]
fn rejects_what_it_cannot_multiply() -> Result<()> {
    let dev = Device::Cpu;
    let w = Tensor::randn(0f32, 1., (4, 64), &dev)?;
    let f16 = QTensor::quantize(&w, GgmlDType::F16)?;
    assert!(QMatrix::new(Arc::new(f16)).is_none());
    let q = QMatrix::new(Arc::new(QTensor::quantize(&w, GgmlDType::Q8_0)?))
        .ok_or_else(|| ModelError::Format("unsupported".into()))?;
    assert!(q.matmul(&[0.0; 63], 1).is_err());
    Ok(())
}

#[test]
fn row_orders_change_only_the_rounding() {
    let mut rng = Rng(11);
    for format in [WeightFormat::Q4K, WeightFormat::Q6K] {
        let cols = 1024;
        let w = random_row(format, cols, &mut rng);
        let x: Vec<f32> = (0..cols).map(|_| rng.f32() * 4.0).collect();
        let mut acts = Acts::quantize(format.act_format(), &x, 1, cols);
        let mut single = [0f32];
        dot_rows(format, &w, &acts, 0, &mut single);
        acts.orders = vec![RowOrder {
            q4k_groups: true,
            q6k_tiled: true,
        }];
        let mut chunk = [0f32];
        dot_rows(format, &w, &acts, 0, &mut chunk);
        let tol = 1e-5 * single[0].abs().max(1.0);
        assert!(
            (single[0] - chunk[0]).abs() <= tol,
            "{format:?}: {single:?} vs {chunk:?}"
        );
    }
}

/// Every product in `y` (`m × rows`, from a packed product) equals the scalar reference's for
/// its weight row of `w` and activation row of `acts`, bit for bit.
fn assert_packed_equals_scalar(
    format: WeightFormat,
    w: &[u8],
    rows: usize,
    acts: &Acts,
    y: &[f32],
) {
    let m = acts.rows;
    for (o, wo) in w.chunks_exact(w.len() / rows).enumerate() {
        let mut want = vec![0f32; m];
        scalar::dot_rows(format, wo, acts, 0, &mut want);
        for i in 0..m {
            assert_eq!(
                y[i * rows + o].to_bits(),
                want[i].to_bits(),
                "{format:?}: weight row {o}, activation row {i} of {m}"
            );
        }
    }
}

#[test]
fn packed_q4k_equals_the_scalar_reference_bit_for_bit() {
    let mut rng = Rng(0x853c_49e6_748f_ea9b);
    let (rows, cols) = (2 * packed::GROUP, 768);
    let w: Vec<u8> = (0..rows)
        .flat_map(|_| random_row(WeightFormat::Q4K, cols, &mut rng))
        .collect();
    for kernels in Kernels::available() {
        let Some(packed) = PackedQ4K::pack(kernels, &w, rows, cols) else {
            assert_eq!(kernels, Kernels::Portable);
            continue;
        };
        let short = &w[..w.len() / rows * (rows - 1)];
        assert!(PackedQ4K::pack(kernels, short, rows - 1, cols).is_none());
        for m in [1usize, 2, 3, 4, 5, 9] {
            let x: Vec<f32> = (0..m * cols).map(|_| rng.f32() * 4.0).collect();
            let mut acts = Acts::quantize(ActFormat::Q8K, &x, m, cols);
            acts.orders = (0..m)
                .map(|_| RowOrder {
                    q4k_groups: rng.next().is_multiple_of(2),
                    q6k_tiled: false,
                })
                .collect();
            let mut y = vec![f32::NAN; m * rows];
            // SAFETY: one thread writes every group.
            unsafe { packed.matmul_groups(&acts, 0..rows / packed::GROUP, y.as_mut_ptr()) };
            assert_packed_equals_scalar(WeightFormat::Q4K, &w, rows, &acts, &y);
        }
    }
}

#[test]
fn packed_32_value_blocks_equal_the_scalar_reference_bit_for_bit() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for kernels in Kernels::available() {
        let cases = [(WeightFormat::Q4_1, 2, 320), (WeightFormat::Q5_0, 3, 640)];
        for (format, groups, cols) in cases {
            let rows = groups * packed32::GROUP;
            let w: Vec<u8> = (0..rows)
                .flat_map(|_| random_row(format, cols, &mut rng))
                .collect();
            let Some(packed) = Packed32::pack(kernels, format, &w, rows, cols) else {
                assert_eq!(kernels, Kernels::Portable, "{format:?}");
                continue;
            };
            assert_eq!(packed.bytes(), w.len());
            let short = &w[..w.len() / rows * (rows - 1)];
            assert!(Packed32::pack(kernels, format, short, rows - 1, cols).is_none());
            assert!(Packed32::pack(kernels, WeightFormat::Q8_0, &w, rows, cols).is_none());
            for m in [1usize, 2, 3, 4, 5, 9] {
                let x: Vec<f32> = (0..m * cols).map(|_| rng.f32() * 4.0).collect();
                let acts = Acts::quantize(format.act_format(), &x, m, cols);
                let mut y = vec![f32::NAN; m * rows];
                let offsets = packed.offsets(&acts);
                // SAFETY: one thread writes every group.
                unsafe { packed.matmul_groups(&acts, &offsets, 0..groups, y.as_mut_ptr()) };
                assert_packed_equals_scalar(format, &w, rows, &acts, &y);
            }
        }
    }
}
