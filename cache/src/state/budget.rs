//! Device memory accounting, eviction planning and load admission.
//!
//! A device's *charge* is the sum of `charged` over its entries in a charged phase: loads
//! waiting for room or running (their planned size), Ready and Draining models (their actual
//! size) and models being unloaded (until the loader's unload returns). The same entries count
//! against `max_loaded_per_device`.
//!
//! Planning a load of `need` bytes treats models already being unloaded as free, then evicts
//! idle, unpinned Ready models in least-recently-used order (ties: shortest remaining
//! keep-alive) until the load fits; if it cannot fit even with every such model evicted,
//! nothing is evicted and the load is refused. A planned load holds its reservation and starts
//! as soon as the device's whole charge fits its limits.

use std::time::Duration;

use tokio::time::Instant;

use super::{Action, Phase, State};
use crate::{CacheError, DeviceId, EvictionReason};

/// Charge and model count of one device.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Usage {
    pub(super) bytes: u64,
    pub(super) models: usize,
}

impl<M> State<M> {
    /// Everything charged on `device`.
    pub(super) fn usage(&self, device: DeviceId) -> Usage {
        let mut usage = Usage::default();
        for e in self.entries.values() {
            if e.spec.device == device && e.phase.is_charged() {
                usage.bytes = usage.bytes.saturating_add(e.charged);
                usage.models += 1;
            }
        }
        usage
    }

    /// True when `usage` is within the device's byte budget and model limit.
    fn within_limits(&self, device: DeviceId, usage: Usage) -> bool {
        usage.models <= self.config.max_loaded_per_device
            && self.config.budget(device).is_none_or(|b| usage.bytes <= b)
    }

    /// The models to evict so that `need` more bytes (and one more model) fit on `device`, or
    /// the refusal when no choice makes them fit.
    fn choose_victims(&self, id: &str, need: u64, now: Instant) -> Result<Vec<String>, CacheError> {
        let Some(entry) = self.entries.get(id) else {
            return Err(CacheError::UnknownModel(id.to_owned()));
        };
        let device = entry.spec.device;
        // What stays charged: everything on the device except this model and unloads in flight.
        let mut kept = Usage::default();
        let mut candidates = Vec::new();
        for (other, e) in &self.entries {
            let stays = e.phase.is_charged() && !matches!(e.phase, Phase::Unloading);
            if e.spec.device != device || other == id || !stays {
                continue;
            }
            kept.bytes = kept.bytes.saturating_add(e.charged);
            kept.models += 1;
            if e.is_evictable() {
                let remaining = e
                    .expires_at()
                    .map_or(Duration::MAX, |t| t.saturating_duration_since(now));
                candidates.push((e.last_used, remaining, other, e.charged));
            }
        }
        candidates.sort();
        let fits = |u: Usage| {
            let with = Usage {
                bytes: u.bytes.saturating_add(need),
                models: u.models + 1,
            };
            self.within_limits(device, with)
        };
        let mut victims = Vec::new();
        for (_, _, other, bytes) in candidates {
            if fits(kept) {
                break;
            }
            kept.bytes = kept.bytes.saturating_sub(bytes);
            kept.models = kept.models.saturating_sub(1);
            victims.push(other.clone());
        }
        if fits(kept) {
            return Ok(victims);
        }
        let model = id.to_owned();
        match self.config.budget(device) {
            Some(budget) if kept.bytes.saturating_add(need) > budget => {
                let available = budget.saturating_sub(kept.bytes);
                Err(CacheError::InsufficientMemory {
                    model,
                    device,
                    needed: need,
                    available,
                })
            }
            _ => {
                let limit = self.config.max_loaded_per_device;
                Err(CacheError::TooManyLoaded {
                    model,
                    device,
                    limit,
                })
            }
        }
    }

    /// Makes room for a load of `need` bytes: evicts what it must and reserves the room, or
    /// refuses every waiter without evicting anything.
    pub(super) fn plan(&mut self, id: &str, need: u64, now: Instant) {
        if let Some(e) = self.entries.get_mut(id) {
            e.charged = 0;
        }
        match self.choose_victims(id, need, now) {
            Ok(victims) => {
                for victim in victims {
                    self.begin_unload(&victim, EvictionReason::Lru);
                }
                if let Some(e) = self.entries.get_mut(id) {
                    e.charged = need;
                    e.phase = Phase::WaitingForRoom;
                }
            }
            Err(err) => {
                if let Some(e) = self.entries.get_mut(id) {
                    tracing::warn!(model = id, %err, "model load refused");
                    e.phase = Phase::Unloaded;
                    e.fail_waiters(&err);
                    e.last_error = Some(err.to_string());
                }
            }
        }
    }

    /// Starts the loads waiting for room on every device where the whole charge now fits.
    /// Where it does not and no unload is in flight to change that (a model came out larger
    /// than planned), the waiting loads are planned again: that evicts more or refuses.
    pub(super) fn admit_all(&mut self, now: Instant) {
        let mut devices: Vec<DeviceId> = self
            .entries
            .values()
            .filter(|e| matches!(e.phase, Phase::WaitingForRoom))
            .map(|e| e.spec.device)
            .collect();
        devices.sort();
        devices.dedup();
        for device in devices {
            if !self.within_limits(device, self.usage(device)) && !self.unloading_on(device) {
                for (id, need) in self.waiting_on(device) {
                    self.plan(&id, need, now);
                }
            }
            if self.within_limits(device, self.usage(device)) {
                for (id, _) in self.waiting_on(device) {
                    self.start_loading(&id);
                }
            }
        }
    }

    fn unloading_on(&self, device: DeviceId) -> bool {
        self.entries
            .values()
            .any(|e| e.spec.device == device && matches!(e.phase, Phase::Unloading))
    }

    /// The loads waiting for room on `device`, with their reservations.
    fn waiting_on(&self, device: DeviceId) -> Vec<(String, u64)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.spec.device == device && matches!(e.phase, Phase::WaitingForRoom))
            .map(|(id, e)| (id.clone(), e.charged))
            .collect()
    }

    fn start_loading(&mut self, id: &str) {
        if let Some(e) = self.entries.get_mut(id) {
            e.phase = Phase::Loading;
            let (spec, generation) = (e.spec.clone(), e.generation);
            self.actions.push(Action::Load { spec, generation });
        }
    }
}
