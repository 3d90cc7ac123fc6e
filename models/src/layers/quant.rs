//! Conversions between quantised weight formats that candle multiplies at different speeds.
//!
//! candle 0.11 has no SIMD kernel for Q5_0 (its dot product is a scalar loop), while Q8_0 has
//! one. Every Q5_0 block is exactly representable as a Q8_0 block with the same scale (its
//! 5-bit values −16..15 fit in 8 bits), and both formats are multiplied against activations
//! quantised to Q8_0, so widening changes no integer product: only the weight bytes grow (34
//! instead of 22 per 32 weights).

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, ggml_file::qtensor_from_ggml};

use crate::{ModelError, Result};

const Q5_0_BLOCK_BYTES: usize = 22;
const Q8_0_BLOCK_BYTES: usize = 34;

/// The same weights as `t` (a Q5_0 tensor) in Q8_0, on `device`.
pub fn widen_q5_0_to_q8_0(t: &QTensor, device: &Device) -> Result<QTensor> {
    if t.dtype() != GgmlDType::Q5_0 {
        return Err(ModelError::Format(format!(
            "expected a Q5_0 tensor, found {:?}",
            t.dtype()
        )));
    }
    let data = t.data()?;
    if data.len() % Q5_0_BLOCK_BYTES != 0 {
        return Err(ModelError::Format(format!(
            "Q5_0 data of {} bytes is not a whole number of blocks",
            data.len()
        )));
    }
    let mut out = vec![0u8; data.len() / Q5_0_BLOCK_BYTES * Q8_0_BLOCK_BYTES];
    for (src, dst) in data
        .chunks_exact(Q5_0_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(Q8_0_BLOCK_BYTES))
    {
        widen_block(src, dst);
    }
    Ok(qtensor_from_ggml(
        GgmlDType::Q8_0,
        &out,
        t.shape().dims().to_vec(),
        device,
    )?)
}

/// One block: Q5_0 is `{ d: f16, qh: u32 (5th bits), qs: [u8; 16] (low nibbles) }` with value
/// `j` (0..16) in the low nibble of `qs[j]` and value `j + 16` in the high nibble; Q8_0 is
/// `{ d: f16, qs: [i8; 32] }`.
fn widen_block(src: &[u8], dst: &mut [u8]) {
    dst[..2].copy_from_slice(&src[..2]);
    let qh = u32::from_le_bytes([src[2], src[3], src[4], src[5]]);
    let qs = &src[6..22];
    let (lo, hi) = dst[2..].split_at_mut(16);
    for (j, &byte) in qs.iter().enumerate() {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        lo[j] = (((byte & 0x0f) | h0) as i8 - 16) as u8;
        hi[j] = (((byte >> 4) | h1) as i8 - 16) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Module, Tensor};

    #[test]
    fn widening_q5_0_is_lossless() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1., (48, 256), &dev)?;
        let q5 = QTensor::quantize(&w, GgmlDType::Q5_0)?;
        let q8 = widen_q5_0_to_q8_0(&q5, &dev)?;
        assert_eq!(q8.dtype(), GgmlDType::Q8_0);
        assert_eq!(q8.shape().dims(), &[48, 256]);
        let a = q5.dequantize(&dev)?.flatten_all()?.to_vec1::<f32>()?;
        let b = q8.dequantize(&dev)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(a, b);
        let x = Tensor::randn(0f32, 1., (3, 256), &dev)?;
        let y5 = candle_core::quantized::QMatMul::from_qtensor(q5)?.forward(&x)?;
        let y8 = candle_core::quantized::QMatMul::from_qtensor(q8)?.forward(&x)?;
        let scale = y5.abs()?.max_all()?.to_scalar::<f32>()?;
        let d = (y5 - y8)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d <= 1e-5 * scale, "{d} vs {scale}");
        Ok(())
    }
}
