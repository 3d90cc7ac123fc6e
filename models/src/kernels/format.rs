//! The GGUF weight block layouts the kernels read, and the 8-bit activation format each pairs with.

use candle_core::quantized::GgmlDType;

/// A quantised weight format with a kernel in this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// 32 weights: f16 scale, 16 bytes of 4-bit values offset by 8.
    Q4_0,
    /// 32 weights: f16 scale, f16 minimum, 16 bytes of unsigned 4-bit values.
    Q4_1,
    /// 32 weights: f16 scale, 32 fifth bits, 16 bytes of low nibbles; values offset by 16.
    Q5_0,
    /// 32 weights: f16 scale, 32 signed bytes.
    Q8_0,
    /// 256 weights: f16 scale and min, 6-bit scales and mins of 8 sub-blocks, 4-bit values.
    Q4K,
    /// 256 weights: as Q4K with a fifth bit per value.
    Q5K,
    /// 256 weights: 6-bit values offset by 32, 16 signed 8-bit scales, f16 super-scale.
    Q6K,
}

/// How activations are quantised for a weight format: per 32 values with an f16 scale (Q8_0),
/// the same with the block's scaled sum (Q8_1, for weights with a minimum), or per 256 with an
/// f32 scale and sums of every 16 (Q8_K), as ggml pairs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActFormat {
    Q8_0,
    Q8_1,
    Q8K,
}

impl WeightFormat {
    pub fn from_ggml(dtype: GgmlDType) -> Option<Self> {
        Some(match dtype {
            GgmlDType::Q4_0 => Self::Q4_0,
            GgmlDType::Q4_1 => Self::Q4_1,
            GgmlDType::Q5_0 => Self::Q5_0,
            GgmlDType::Q8_0 => Self::Q8_0,
            GgmlDType::Q4K => Self::Q4K,
            GgmlDType::Q5K => Self::Q5K,
            GgmlDType::Q6K => Self::Q6K,
            _ => return None,
        })
    }

    /// Weights per block.
    pub const fn block_len(self) -> usize {
        match self {
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q8_0 => 32,
            Self::Q4K | Self::Q5K | Self::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q8_0 => 34,
            Self::Q4K => 144,
            Self::Q5K => 176,
            Self::Q6K => 210,
        }
    }

    pub const fn act_format(self) -> ActFormat {
        match self {
            Self::Q4_0 | Self::Q5_0 | Self::Q8_0 => ActFormat::Q8_0,
            Self::Q4_1 => ActFormat::Q8_1,
            Self::Q4K | Self::Q5K | Self::Q6K => ActFormat::Q8K,
        }
    }
}

/// The float order of one row's K-quant products, as llama.cpp's CPU build (AVX2) would give
/// it, which there depends on how many rows a product has: Q4K rows in whole groups of four go
/// through its repacked 4-row kernel (one multiply-add per 64 values), the others through its
/// single-row kernel (one per 256); Q6K products of eight rows or more go through its tiled
/// kernel (`(dw·sumi)·da` per 256 values), smaller ones through `ggml_vec_dot_q6_K_q8_K`
/// (eight float lanes). [`Default`] is the single-row order of a decode step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowOrder {
    pub q4k_groups: bool,
    pub q6k_tiled: bool,
}

impl RowOrder {
    /// The orders of a chunk of `len` rows of one sequence, as llama.cpp multiplies them when
    /// the chunk is its batch.
    pub fn chunk(len: usize) -> impl Iterator<Item = RowOrder> {
        (0..len).map(move |i| RowOrder {
            q4k_groups: len > 3 && i < len - len % 4,
            q6k_tiled: len >= 8,
        })
    }
}

/// The f16 at the start of `bytes`, as f32.
#[inline(always)]
pub(crate) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// Scale and min of sub-block `j` (0..8) from the 12 packed bytes of a Q4K/Q5K block.
#[inline(always)]
pub(crate) fn k_scale_min(scales: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        (
            (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
        )
    }
}
