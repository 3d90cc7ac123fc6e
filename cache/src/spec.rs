//! What the cache manages and how it loads it: [`DeviceId`], [`ModelSpec`] (one catalog entry
//! as the cache sees it) and the [`Loader`] trait the router implements over its engines.

use std::fmt;
use std::str::FromStr;

use crate::KeepAlive;

/// A device models are placed on; each has its own memory budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceId {
    /// Host memory.
    Cpu,
    /// A CUDA device by ordinal.
    Cuda(u32),
}

impl fmt::Display for DeviceId {
    /// `cpu` or `cuda:N`, the catalog's spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceId::Cpu => f.write_str("cpu"),
            DeviceId::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceId {
    type Err = String;

    /// `cpu`, `cuda` (ordinal 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(DeviceId::Cpu),
            "cuda" => Ok(DeviceId::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceId::Cuda)
                .ok_or_else(|| format!("invalid device {s:?}: expected \"cpu\" or \"cuda:N\"")),
        }
    }
}

/// One model as the cache manages it. The cache key is `id` alone: request options that the
/// loaded instance can serve never cause a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// The catalog id.
    pub id: String,
    /// Where it is loaded.
    pub device: DeviceId,
    /// The catalog's keep-alive; `None` uses [`crate::CacheConfig::default_keep_alive`].
    pub keep_alive: Option<KeepAlive>,
    /// Pinned from the start: never evicted nor expired, still counted against the budget.
    pub pinned: bool,
}

impl ModelSpec {
    /// A spec on `device` with the default keep-alive, not pinned.
    pub fn new(id: impl Into<String>, device: DeviceId) -> Self {
        ModelSpec {
            id: id.into(),
            device,
            keep_alive: None,
            pinned: false,
        }
    }
}

/// Loads and unloads models for the cache. Every method runs on a blocking thread
/// (`tokio::task::spawn_blocking`), never on the cache's actor; a panic in one is reported as
/// a failure of that call.
pub trait Loader: Send + Sync + 'static {
    /// The loaded model; dropping it frees its memory (engine threads exit when their handles
    /// drop, weights are released).
    type Model: Send + Sync + 'static;

    /// Bytes the model will take on `spec.device` (weights + KV cache for its maximum number
    /// of sequences + overhead). Called before a load unless an earlier load of the same model
    /// reported its actual size, which is preferred.
    fn estimate(&self, spec: &ModelSpec) -> Result<u64, String>;

    /// Loads on the calling (blocking) thread; returns the model and the bytes it really took.
    fn load(&self, spec: &ModelSpec) -> Result<(Self::Model, u64), String>;

    /// Unloads a model no lease refers to any more. The memory counts as free when this
    /// returns. The default drops it.
    fn unload(&self, spec: &ModelSpec, model: Self::Model) {
        let _ = spec;
        drop(model);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_round_trip() {
        for d in [DeviceId::Cpu, DeviceId::Cuda(0), DeviceId::Cuda(3)] {
            assert_eq!(d.to_string().parse::<DeviceId>(), Ok(d));
        }
        assert_eq!("cuda".parse::<DeviceId>(), Ok(DeviceId::Cuda(0)));
        assert!("gpu".parse::<DeviceId>().is_err());
        assert!("cuda:x".parse::<DeviceId>().is_err());
    }
}
