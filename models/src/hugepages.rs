//! Weight buffers on transparent huge pages: a model's quantised tensors are copied from the
//! mapped GGUF into memory the kernel is asked (`madvise(MADV_HUGEPAGE)`) to back with 2 MiB
//! pages before the first byte is written. Decoding streams every weight once per token, and
//! with 4 KiB pages a TLB miss every 4 KiB costs a page walk (two levels of them in a virtual
//! machine); where transparent huge pages are set to `madvise`, the default on many
//! distributions, nothing else would give the weights large pages.

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K,
    BlockQ8_0, BlockQ8_1, BlockQ8K,
};
use candle_core::quantized::{GgmlDType, GgmlType, QStorage};
use half::{bf16, f16};

/// Buffers smaller than this stay on ordinary pages (a huge page must fit inside).
const HUGE_PAGE: usize = 2 << 20;

/// CPU storage for `bytes` of `dtype` blocks, on huge pages where the kernel gives them; `None`
/// when `bytes` is not whole blocks of `dtype`.
pub fn cpu_qstorage(bytes: &[u8], dtype: GgmlDType) -> Option<QStorage> {
    Some(match dtype {
        GgmlDType::F32 => boxed::<f32>(bytes)?,
        GgmlDType::F16 => boxed::<f16>(bytes)?,
        GgmlDType::BF16 => boxed::<bf16>(bytes)?,
        GgmlDType::Q4_0 => boxed::<BlockQ4_0>(bytes)?,
        GgmlDType::Q4_1 => boxed::<BlockQ4_1>(bytes)?,
        GgmlDType::Q5_0 => boxed::<BlockQ5_0>(bytes)?,
        GgmlDType::Q5_1 => boxed::<BlockQ5_1>(bytes)?,
        GgmlDType::Q8_0 => boxed::<BlockQ8_0>(bytes)?,
        GgmlDType::Q8_1 => boxed::<BlockQ8_1>(bytes)?,
        GgmlDType::Q2K => boxed::<BlockQ2K>(bytes)?,
        GgmlDType::Q3K => boxed::<BlockQ3K>(bytes)?,
        GgmlDType::Q4K => boxed::<BlockQ4K>(bytes)?,
        GgmlDType::Q5K => boxed::<BlockQ5K>(bytes)?,
        GgmlDType::Q6K => boxed::<BlockQ6K>(bytes)?,
        GgmlDType::Q8K => boxed::<BlockQ8K>(bytes)?,
    })
}

fn boxed<T: GgmlType + 'static>(bytes: &[u8]) -> Option<QStorage> {
    Some(QStorage::Cpu(Box::new(copied::<T>(bytes)?)))
}

/// `bytes` as a vector of `T`, whose every bit pattern is valid (GGML's blocks and floats are
/// plain old data), in a fresh allocation advised onto huge pages before it is written.
fn copied<T: GgmlType>(bytes: &[u8]) -> Option<Vec<T>> {
    let size = std::mem::size_of::<T>();
    if size == 0 || !bytes.len().is_multiple_of(size) {
        return None;
    }
    let n = bytes.len() / size;
    let mut v = Vec::<T>::with_capacity(n);
    advise_huge(v.as_mut_ptr().cast(), bytes.len());
    // SAFETY: the allocation holds `n` values of `T` = `bytes.len()` bytes and does not overlap
    // `bytes`; every bit pattern is a valid `T` (GGML block structs of integers and halves,
    // and floats), so the `n` values are initialised once copied.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len());
        v.set_len(n);
    }
    Some(v)
}

/// Asks the kernel for huge pages under the whole pages of `ptr..ptr + len`. Advice only: a
/// kernel without transparent huge pages, or with them off, keeps ordinary pages.
fn advise_huge(ptr: *mut u8, len: usize) {
    if len < HUGE_PAGE {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = (ptr as usize).next_multiple_of(PAGE);
        let end = (ptr as usize + len) / PAGE * PAGE;
        if end > start {
            // SAFETY: the range lies within an allocation this process owns; MADV_HUGEPAGE
            // changes only how it is backed, never its contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_holds_the_bytes_it_was_given() -> candle_core::Result<()> {
        let bytes: Vec<u8> = (0..34 * 100_000).map(|i| (i * 7 % 251) as u8).collect();
        let storage = cpu_qstorage(&bytes, GgmlDType::Q8_0)
            .ok_or(candle_core::Error::Msg("whole Q8_0 blocks refused".into()))?;
        let t = candle_core::quantized::QTensor::new(storage, (100_000, 32))?;
        assert_eq!(&*t.data()?, &bytes[..]);
        assert!(cpu_qstorage(&bytes[..33], GgmlDType::Q8_0).is_none());
        Ok(())
    }
}
