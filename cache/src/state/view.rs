//! Read-only views of the state: per-model status, per-device memory and the metrics snapshot.
//! Times are tracked as tokio `Instant`s and reported as wall-clock `SystemTime`s.

use std::time::SystemTime;

use tokio::time::Instant;

use super::{Entry, Phase, State};
use crate::metrics::{CacheMetrics, DeviceMetrics, ModelMetrics};
use crate::{DeviceId, DeviceMemory, ModelState, ModelStatus};

/// The wall-clock time of `t`, given that `now` is now.
fn wall(t: Instant, now: Instant) -> SystemTime {
    let wall_now = SystemTime::now();
    if t <= now {
        wall_now.checked_sub(now - t).unwrap_or(wall_now)
    } else {
        wall_now.checked_add(t - now).unwrap_or(wall_now)
    }
}

impl<M> Phase<M> {
    pub(super) fn public(&self) -> ModelState {
        match self {
            Phase::Unloaded => ModelState::Unloaded,
            Phase::Failed => ModelState::Failed,
            Phase::Estimating | Phase::WaitingForRoom | Phase::Loading => ModelState::Loading,
            Phase::Ready(_) => ModelState::Ready,
            Phase::Draining(_) | Phase::Unloading => ModelState::Unloading,
        }
    }
}

impl<M> Entry<M> {
    /// Callers waiting for a load, including any that gave up but are not pruned yet.
    fn waiters(&self) -> usize {
        let acquirers = self.acquirers.iter().filter(|r| !r.is_closed()).count();
        acquirers + self.loaders.iter().filter(|r| !r.is_closed()).count()
    }

    pub(super) fn status(&self, now: Instant) -> ModelStatus {
        ModelStatus {
            id: self.spec.id.clone(),
            state: self.phase.public(),
            device: self.spec.device,
            estimated_bytes: self.actual.or(self.estimated),
            actual_bytes: self.actual,
            pinned: self.pinned,
            keep_alive: self.keep_alive,
            expires_at: self.expires_at().map(|t| wall(t, now)),
            last_used_at: self.last_used.map(|t| wall(t, now)),
            loaded_at: self.loaded_at.map(|t| wall(t, now)),
            load_duration: self.load_duration,
            in_flight: self.leases(),
            requests_served: self.requests_served,
            last_error: self.last_error.clone(),
            waiters: self.waiters(),
        }
    }
}

impl<M> State<M> {
    /// Every model's status, sorted by id.
    pub(crate) fn status(&self, now: Instant) -> Vec<ModelStatus> {
        self.entries.values().map(|e| e.status(now)).collect()
    }

    /// The devices with a budget or a model, sorted.
    fn devices(&self) -> Vec<DeviceId> {
        let mut devices: Vec<DeviceId> = self.config.budgets.keys().copied().collect();
        devices.extend(self.entries.values().map(|e| e.spec.device));
        devices.sort();
        devices.dedup();
        devices
    }

    /// Budget, charge and resident models of every device.
    pub(crate) fn memory(&self) -> Vec<DeviceMemory> {
        self.devices()
            .into_iter()
            .map(|device| {
                let budget = self.config.budget(device);
                let used = self.usage(device).bytes;
                let resident = self
                    .entries
                    .iter()
                    .filter(|(_, e)| e.spec.device == device && e.phase.is_charged())
                    .map(|(id, _)| id.clone())
                    .collect();
                DeviceMemory {
                    device,
                    budget,
                    used,
                    free: budget.map(|b| b.saturating_sub(used)),
                    resident,
                }
            })
            .collect()
    }

    /// Every counter and gauge.
    pub(crate) fn metrics(&self) -> CacheMetrics {
        let models = self
            .entries
            .iter()
            .map(|(id, e)| ModelMetrics {
                model: id.clone(),
                state: e.phase.public(),
                counters: e.counters.clone(),
                waiters: e.waiters(),
            })
            .collect();
        let devices = self
            .devices()
            .into_iter()
            .map(|device| DeviceMetrics {
                device,
                budget: self.config.budget(device),
                used: self.usage(device).bytes,
            })
            .collect();
        CacheMetrics { models, devices }
    }
}
