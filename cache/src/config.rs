//! The cache's configuration ([`CacheConfig`]) and the per-call options of acquire, load and
//! unload.

use std::collections::HashMap;
use std::time::Duration;

use crate::{DeviceId, KeepAlive};

/// Capacity of the command channel between the handles and the actor.
pub(crate) const COMMAND_CAPACITY: usize = 1024;

/// Budgets and limits of a [`crate::ModelCache`].
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Bytes models may take per device. A device without an entry has no byte limit (only
    /// `max_loaded_per_device` applies); see [`crate::default_cpu_budget`] for the host.
    pub budgets: HashMap<DeviceId, u64>,
    /// Models resident at once per device, loads in flight included (default 3; 0 refuses
    /// every load).
    pub max_loaded_per_device: usize,
    /// Keep-alive of models whose catalog entry and request set none (default 5 minutes).
    pub default_keep_alive: KeepAlive,
    /// Callers waiting per model for a load (default 256); past it an acquire fails at once
    /// with [`crate::CacheError::TooManyWaiters`].
    pub max_waiters: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            budgets: HashMap::new(),
            max_loaded_per_device: 3,
            default_keep_alive: KeepAlive::DEFAULT,
            max_waiters: 256,
        }
    }
}

impl CacheConfig {
    /// The byte budget of `device`, `None` when unlimited.
    pub fn budget(&self, device: DeviceId) -> Option<u64> {
        self.budgets.get(&device).copied()
    }
}

/// Options of [`crate::ModelCache::acquire`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcquireOptions {
    /// The request's keep-alive. The latest acquire (or load) sets the model's keep-alive;
    /// `None` falls back to the catalog's, then the config's default.
    pub keep_alive: Option<KeepAlive>,
}

/// Options of [`crate::ModelCache::load`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Sets the model's keep-alive when given; `None` leaves it as it is.
    pub keep_alive: Option<KeepAlive>,
    /// Pins the model (never evicted nor expired); `false` leaves the pin as it is.
    pub pin: bool,
}

/// Options of [`crate::ModelCache::unload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnloadOptions {
    /// Unload without waiting for leases: the call returns at once, the model stops taking
    /// new leases, and it is unloaded (its memory counted free) when the last lease drops.
    pub force: bool,
    /// Without `force`, how long to wait for the leases to drop before failing with
    /// [`crate::CacheError::Busy`] (default 30 s).
    pub timeout: Duration,
}

impl Default for UnloadOptions {
    fn default() -> Self {
        UnloadOptions {
            force: false,
            timeout: Duration::from_secs(30),
        }
    }
}
