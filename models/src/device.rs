//! Compute devices by their catalog names (`cpu`, `cuda:N`), one shared handle per GPU, and the
//! free memory the NVIDIA driver reports for it.
//!
//! Candle gives every `Device::new_cuda` call its own stream and identity, and tensors of two
//! identities cannot meet in one operation; so every model placed on `cuda:N` gets the same
//! handle from here.

use candle_core::Device;

use crate::{ModelError, Result};

/// The device named `name`: `cpu`, `cuda` (GPU 0) or `cuda:N`.
pub fn by_name(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        _ => match name
            .strip_prefix("cuda")
            .map(|n| n.strip_prefix(':').unwrap_or(n))
        {
            Some("") => cuda(0),
            Some(n) => match n.parse::<usize>() {
                Ok(i) => cuda(i),
                Err(_) => Err(bad(name)),
            },
            None => Err(bad(name)),
        },
    }
}

fn bad(name: &str) -> ModelError {
    ModelError::Unsupported(format!("device {name:?}: expected \"cpu\" or \"cuda:N\""))
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> Result<Device> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static GPUS: OnceLock<Mutex<HashMap<usize, Device>>> = OnceLock::new();
    let mut gpus = GPUS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(d) = gpus.get(&ordinal) {
        return Ok(d.clone());
    }
    let d = Device::new_cuda(ordinal).map_err(|e| {
        // Candle attaches a backtrace to CUDA errors; the cause alone is the message.
        let cause = match e {
            candle_core::Error::WithBacktrace { inner, .. } => inner.to_string(),
            other => other.to_string(),
        };
        ModelError::Unsupported(format!("cuda:{ordinal} cannot be opened: {cause}"))
    })?;
    gpus.insert(ordinal, d.clone());
    Ok(d)
}

#[cfg(not(feature = "cuda"))]
fn cuda(ordinal: usize) -> Result<Device> {
    Err(ModelError::Unsupported(format!(
        "cuda:{ordinal} needs a build with the `cuda` feature"
    )))
}

/// Free and total bytes of a GPU as its driver reports them (after the device's pending work is
/// done); `None` for the CPU.
pub fn gpu_memory(device: &Device) -> Result<Option<(u64, u64)>> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        device.synchronize()?;
        let (free, total) = d
            .cuda_stream()
            .context()
            .mem_get_info()
            .map_err(|e| ModelError::Unsupported(format!("cuda memory info: {e}")))?;
        return Ok(Some((free as u64, total as u64)));
    }
    let _ = device;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(matches!(by_name("cpu"), Ok(Device::Cpu)));
        for bad in ["gpu", "cuda:x", "cuda:-1", "cudax", ""] {
            let err = by_name(bad).unwrap_err().to_string();
            assert!(err.contains("expected"), "{bad}: {err}");
        }
        assert_eq!(gpu_memory(&Device::Cpu).unwrap(), None);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn gpus_need_the_feature() {
        let err = by_name("cuda:0").unwrap_err().to_string();
        assert!(err.contains("`cuda` feature"), "{err}");
    }

    /// Needs an NVIDIA GPU: `cargo test --features cuda -- --ignored gpu_`.
    #[cfg(feature = "cuda")]
    #[test]
    #[ignore = "needs an NVIDIA GPU"]
    fn gpu_handles_are_shared_and_report_memory() {
        let a = by_name("cuda:0").unwrap();
        let b = by_name("cuda").unwrap();
        assert!(a.same_device(&b));
        let (free, total) = gpu_memory(&a).unwrap().unwrap();
        assert!(free > 0 && free <= total, "{free} of {total}");
    }
}
