//! State transitions driven by completed blocking work (estimate, load, unload), by dropped
//! leases and by time (keep-alive expiry, unload timeouts).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Action, Phase, State};
use crate::lease::Slot;
use crate::{CacheError, EvictionReason};

impl<M> State<M> {
    /// Starts the single load of a cold model: sized by its last actual size when known,
    /// else by asking the loader for an estimate first.
    pub(super) fn start_load(&mut self, id: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        e.generation += 1;
        match e.actual {
            Some(bytes) => self.plan(id, bytes, now),
            None => {
                e.phase = Phase::Estimating;
                let (spec, generation) = (e.spec.clone(), e.generation);
                self.actions.push(Action::Estimate { spec, generation });
            }
        }
    }

    /// The loader's estimate arrived.
    pub(crate) fn on_estimated(
        &mut self,
        id: &str,
        generation: u64,
        result: Result<u64, String>,
        now: Instant,
    ) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        if e.generation != generation || !matches!(e.phase, Phase::Estimating) {
            return;
        }
        match result {
            Ok(bytes) => {
                e.estimated = Some(bytes);
                self.plan(id, bytes, now);
            }
            Err(cause) => self.fail_load(id, cause),
        }
        self.admit_all(now);
    }

    /// A load finished: on success the model is Ready and every waiter gets its lease or
    /// status; on failure every waiter gets the cause.
    pub(crate) fn on_loaded(
        &mut self,
        id: &str,
        generation: u64,
        result: Result<(M, u64), String>,
        elapsed: Duration,
        now: Instant,
    ) {
        let current = self
            .entries
            .get(id)
            .is_some_and(|e| e.generation == generation && matches!(e.phase, Phase::Loading));
        match (current, result) {
            (false, Ok((model, _))) => {
                // Not expected by this state: hand it straight back to the loader.
                if let Some(e) = self.entries.get(id) {
                    let (spec, model) = (e.spec.clone(), Arc::new(model));
                    self.actions.push(Action::Unload {
                        spec,
                        generation,
                        model,
                    });
                }
            }
            (false, Err(_)) => {}
            (true, Err(cause)) => self.fail_load(id, cause),
            (true, Ok((model, bytes))) => self.ready(id, model, bytes, elapsed, now),
        }
        self.admit_all(now);
    }

    fn ready(&mut self, id: &str, model: M, bytes: u64, elapsed: Duration, now: Instant) {
        let notify = Arc::clone(&self.notify);
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        tracing::info!(
            model = id,
            bytes,
            seconds = elapsed.as_secs_f64(),
            "model loaded"
        );
        e.actual = Some(bytes);
        e.charged = bytes;
        e.slot = Some(Slot::new(id, notify));
        e.phase = Phase::Ready(Arc::new(model));
        e.loaded_at = Some(now);
        e.last_used = Some(now);
        e.idle_since = None;
        e.load_duration = Some(elapsed);
        e.last_error = None;
        e.counters.loads_success += 1;
        e.counters.load_seconds.observe(elapsed.as_secs_f64());
        self.serve_waiters(id, now);
        if let Some(e) = self.entries.get_mut(id)
            && (e.force_unload || !e.unloaders.is_empty())
        {
            let phase = std::mem::replace(&mut e.phase, Phase::Unloaded);
            e.phase = match phase {
                Phase::Ready(model) => Phase::Draining(model),
                other => other,
            };
        }
        self.check_idle(id, now);
    }

    /// Grants leases to the acquirers and statuses to the load calls of a Ready model.
    fn serve_waiters(&mut self, id: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        if !matches!(e.phase, Phase::Ready(_)) {
            return;
        }
        for reply in std::mem::take(&mut e.acquirers) {
            e.grant(reply, now);
        }
        if !e.loaders.is_empty() {
            let status = e.status(now);
            for reply in e.loaders.drain(..) {
                let _ = reply.send(Ok(status.clone()));
            }
        }
    }

    /// The estimate or the load failed: Failed, nothing charged, every waiter told.
    fn fail_load(&mut self, id: &str, cause: String) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        tracing::warn!(model = id, %cause, "model load failed");
        e.phase = Phase::Failed;
        e.charged = 0;
        e.counters.loads_failure += 1;
        e.fail_waiters(&CacheError::LoadFailed {
            model: id.to_owned(),
            cause: cause.clone(),
        });
        e.last_error = Some(cause);
    }

    /// Takes a Ready or Draining model out of service and asks the loader to unload it.
    pub(super) fn begin_unload(&mut self, id: &str, reason: EvictionReason) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        let model = match std::mem::replace(&mut e.phase, Phase::Unloading) {
            Phase::Ready(model) | Phase::Draining(model) => model,
            other => {
                e.phase = other;
                return;
            }
        };
        tracing::info!(model = id, reason = reason.as_str(), "unloading model");
        e.counters.evictions.add(reason);
        e.slot = None;
        e.idle_since = None;
        let (spec, generation) = (e.spec.clone(), e.generation);
        self.actions.push(Action::Unload {
            spec,
            generation,
            model,
        });
    }

    /// The loader's unload returned: the memory is free. Callers that queued meanwhile get a
    /// fresh load.
    pub(crate) fn on_unloaded(&mut self, id: &str, generation: u64, now: Instant) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        if e.generation != generation || !matches!(e.phase, Phase::Unloading) {
            return;
        }
        e.phase = Phase::Unloaded;
        e.charged = 0;
        e.loaded_at = None;
        e.finish_unloaders();
        if e.live_waiters() > 0 {
            self.start_load(id, now);
        }
        self.admit_all(now);
    }

    /// Leases were dropped: models whose count reached zero become idle (and unload now with
    /// keep-alive zero), draining ones unload.
    pub(crate) fn on_released(&mut self, now: Instant) {
        let idle: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.slot.is_some()
                    && e.leases() == 0
                    && match e.phase {
                        Phase::Ready(_) => e.idle_since.is_none(),
                        Phase::Draining(_) => true,
                        _ => false,
                    }
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in idle {
            self.check_idle(&id, now);
        }
        self.admit_all(now);
    }

    /// Marks a lease-free Ready model idle (keep-alive zero unloads it at once) and unloads a
    /// lease-free Draining one.
    pub(super) fn check_idle(&mut self, id: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        if e.leases() != 0 {
            return;
        }
        match e.phase {
            Phase::Draining(_) => self.begin_unload(id, EvictionReason::Unload),
            Phase::Ready(_) => {
                if e.idle_since.is_none() {
                    e.idle_since = Some(now);
                    e.last_used = Some(now);
                }
                if !e.pinned && e.keep_alive.is_zero() {
                    self.begin_unload(id, EvictionReason::KeepAliveZero);
                }
            }
            _ => {}
        }
    }

    /// Time passed: unload calls past their timeout get `Busy` (a model nobody else wants
    /// unloaded goes back to Ready), idle models past their keep-alive unload.
    pub(crate) fn on_tick(&mut self, now: Instant) {
        let ids: Vec<String> = self.entries.keys().cloned().collect();
        for id in ids {
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            if e.timeouts().any(|d| d <= now) {
                let in_flight = e.leases();
                let (late, waiting) = std::mem::take(&mut e.unloaders)
                    .into_iter()
                    .partition(|w| w.deadline.is_some_and(|d| d <= now));
                e.unloaders = waiting;
                for w in late {
                    let busy = CacheError::Busy {
                        model: id.clone(),
                        in_flight,
                    };
                    let _ = w.reply.send(Err(busy));
                }
                if e.unloaders.is_empty() && !e.force_unload {
                    let phase = std::mem::replace(&mut e.phase, Phase::Unloaded);
                    e.phase = match phase {
                        Phase::Draining(model) => Phase::Ready(model),
                        other => other,
                    };
                    self.serve_waiters(&id, now);
                    self.check_idle(&id, now);
                }
            }
            if self
                .entries
                .get(&id)
                .and_then(|e| e.expires_at())
                .is_some_and(|t| t <= now)
            {
                self.begin_unload(&id, EvictionReason::Expired);
            }
        }
        self.admit_all(now);
    }

    /// The earliest keep-alive expiry or unload timeout, for the actor's timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .flat_map(|e| e.timeouts().chain(e.expires_at()))
            .min()
    }
}
