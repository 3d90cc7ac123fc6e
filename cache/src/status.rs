//! Introspection snapshots: [`ModelState`], [`ModelStatus`] and [`DeviceMemory`].

use std::time::{Duration, SystemTime};

use crate::{DeviceId, KeepAlive};

/// Residency of a model as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelState {
    /// Not in memory.
    Unloaded,
    /// Sizing, waiting for evictions to make room, or loading.
    Loading,
    /// In memory and taking leases.
    Ready,
    /// Leaving memory: waiting for its leases to drop, or being unloaded.
    Unloading,
    /// The last load failed (see `last_error`); the next request retries.
    Failed,
}

impl ModelState {
    /// Every state, in a fixed order (for metrics that report each one).
    pub const ALL: [ModelState; 5] = [
        ModelState::Unloaded,
        ModelState::Loading,
        ModelState::Ready,
        ModelState::Unloading,
        ModelState::Failed,
    ];

    /// `unloaded`, `loading`, `ready`, `unloading` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Unloaded => "unloaded",
            ModelState::Loading => "loading",
            ModelState::Ready => "ready",
            ModelState::Unloading => "unloading",
            ModelState::Failed => "failed",
        }
    }
}

/// One model's residency and usage.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelStatus {
    pub id: String,
    pub state: ModelState,
    pub device: DeviceId,
    /// The size the next (or current) load is planned with: the last actual size when one is
    /// known, else the loader's last estimate.
    pub estimated_bytes: Option<u64>,
    /// The size the last successful load reported.
    pub actual_bytes: Option<u64>,
    pub pinned: bool,
    /// The keep-alive in effect (the latest request's, else the catalog's, else the default).
    pub keep_alive: KeepAlive,
    /// When the model unloads if it stays idle; `None` while leased, pinned, kept forever or
    /// not ready.
    pub expires_at: Option<SystemTime>,
    pub last_used_at: Option<SystemTime>,
    pub loaded_at: Option<SystemTime>,
    /// How long the last successful load took.
    pub load_duration: Option<Duration>,
    /// Leases held now.
    pub in_flight: usize,
    /// Leases granted since the cache started.
    pub requests_served: u64,
    pub last_error: Option<String>,
    /// Callers waiting for a load (acquire and load calls).
    pub waiters: usize,
}

/// One device's budget and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMemory {
    pub device: DeviceId,
    /// `None` when the device has no byte limit.
    pub budget: Option<u64>,
    /// Bytes charged: resident models plus reservations of loads in flight.
    pub used: u64,
    /// `budget - used` (zero when over budget); `None` without a budget.
    pub free: Option<u64>,
    /// Ids of the models charged on the device, sorted.
    pub resident: Vec<String>,
}
