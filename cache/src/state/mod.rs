//! The cache's state machine: one [`Entry`] per model and the rules that move it between
//! unloaded, loading, ready, unloading and failed. [`State`] is plain data driven by method
//! calls with an explicit `now`; it never spawns or awaits. Work it wants done (estimate, load,
//! unload on a blocking thread) comes out as [`Action`]s that the actor runs and reports back.
//!
//! Callers waiting on it are `oneshot` senders it completes directly; the unit tests drive it
//! synchronously and read those replies with `try_recv`.
//!
//! Memory accounting: an entry is *charged* on its device from the moment its load is admitted
//! (a reservation of the planned size) until its unload returns; see `budget.rs`.

mod budget;
mod entry;
mod transitions;
mod view;

#[cfg(test)]
mod harness;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_evict;
#[cfg(test)]
mod tests_lifecycle;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::lease::Lease;
use crate::{
    AcquireOptions, CacheConfig, CacheError, LoadOptions, ModelSpec, ModelStatus, UnloadOptions,
};
use entry::{Entry, Phase, UnloadWaiter};

/// Where an acquire's lease (or its error) goes.
pub(crate) type AcquireReply<M> = oneshot::Sender<Result<Lease<M>, CacheError>>;
/// Where a load call's status (or its error) goes.
pub(crate) type LoadReply = oneshot::Sender<Result<ModelStatus, CacheError>>;
/// Where an unload call's outcome goes.
pub(crate) type UnloadReply = oneshot::Sender<Result<(), CacheError>>;

/// Blocking work for the actor; each reports back with the same `generation`.
pub(crate) enum Action<M> {
    /// `Loader::estimate`, then `State::on_estimated`.
    Estimate { spec: ModelSpec, generation: u64 },
    /// `Loader::load`, then `State::on_loaded`.
    Load { spec: ModelSpec, generation: u64 },
    /// `Loader::unload` of the unwrapped model, then `State::on_unloaded`.
    Unload {
        spec: ModelSpec,
        generation: u64,
        model: Arc<M>,
    },
}

/// Every model's entry plus the configuration; owned by the actor alone.
pub(crate) struct State<M> {
    entries: BTreeMap<String, Entry<M>>,
    config: CacheConfig,
    notify: Arc<Notify>,
    actions: Vec<Action<M>>,
}

impl<M> State<M> {
    /// A state with every model unloaded. A later spec with the same id replaces an earlier
    /// one. `notify` is what dropped leases wake the actor with.
    pub(crate) fn new(specs: Vec<ModelSpec>, config: CacheConfig, notify: Arc<Notify>) -> Self {
        let entries = specs
            .into_iter()
            .map(|s| (s.id.clone(), Entry::new(s, config.default_keep_alive)))
            .collect();
        State {
            entries,
            config,
            notify,
            actions: Vec::new(),
        }
    }

    /// The blocking work asked for since the last call.
    pub(crate) fn take_actions(&mut self) -> Vec<Action<M>> {
        std::mem::take(&mut self.actions)
    }

    /// A lease now if `id` is Ready; else the caller waits for the (single) load, which starts
    /// here if none is in flight.
    pub(crate) fn acquire(
        &mut self,
        id: &str,
        opts: AcquireOptions,
        reply: AcquireReply<M>,
        now: Instant,
    ) {
        let (max_waiters, default_keep_alive) =
            (self.config.max_waiters, self.config.default_keep_alive);
        let Some(e) = self.entries.get_mut(id) else {
            let _ = reply.send(Err(CacheError::UnknownModel(id.to_owned())));
            return;
        };
        e.keep_alive = opts
            .keep_alive
            .or(e.spec.keep_alive)
            .unwrap_or(default_keep_alive);
        if matches!(e.phase, Phase::Ready(_)) {
            e.grant(reply, now);
            return;
        }
        if e.live_waiters() >= max_waiters {
            let model = id.to_owned();
            let _ = reply.send(Err(CacheError::TooManyWaiters {
                model,
                limit: max_waiters,
            }));
            return;
        }
        e.acquirers.push(reply);
        if e.phase.is_cold() {
            self.start_load(id, now);
        }
        self.admit_all(now);
    }

    /// Loads `id` (or waits for the load in flight) and replies with its status once Ready.
    pub(crate) fn load(&mut self, id: &str, opts: LoadOptions, reply: LoadReply, now: Instant) {
        let max_waiters = self.config.max_waiters;
        let Some(e) = self.entries.get_mut(id) else {
            let _ = reply.send(Err(CacheError::UnknownModel(id.to_owned())));
            return;
        };
        e.pinned |= opts.pin;
        if let Some(keep_alive) = opts.keep_alive {
            e.keep_alive = keep_alive;
        }
        if matches!(e.phase, Phase::Ready(_)) {
            if e.idle_since.is_some() {
                // A load restarts the keep-alive of an idle model.
                e.idle_since = Some(now);
            }
            let _ = reply.send(Ok(e.status(now)));
            self.check_idle(id, now);
            return;
        }
        if e.live_waiters() >= max_waiters {
            let model = id.to_owned();
            let _ = reply.send(Err(CacheError::TooManyWaiters {
                model,
                limit: max_waiters,
            }));
            return;
        }
        e.loaders.push(reply);
        if e.phase.is_cold() {
            self.start_load(id, now);
        }
        self.admit_all(now);
    }

    /// Unloads `id`. An explicit unload also unpins it. Without `force` the reply waits for the
    /// leases to drop (or `Busy` at the timeout); with `force` it comes at once and the unload
    /// happens when the last lease drops. A load in flight completes first (its waiters get
    /// their leases).
    pub(crate) fn unload(
        &mut self,
        id: &str,
        opts: UnloadOptions,
        reply: UnloadReply,
        now: Instant,
    ) {
        let Some(e) = self.entries.get_mut(id) else {
            let _ = reply.send(Err(CacheError::UnknownModel(id.to_owned())));
            return;
        };
        e.pinned = false;
        if e.phase.is_cold() {
            let _ = reply.send(Ok(()));
            return;
        }
        if opts.force {
            let _ = reply.send(Ok(()));
            e.finish_unloaders();
            e.force_unload = true;
        } else {
            let deadline = now.checked_add(opts.timeout);
            e.unloaders.push(UnloadWaiter { deadline, reply });
        }
        let phase = std::mem::replace(&mut e.phase, Phase::Unloaded);
        e.phase = match phase {
            Phase::Ready(model) => Phase::Draining(model),
            other => other,
        };
        if matches!(e.phase, Phase::Draining(_)) && e.leases() == 0 {
            self.begin_unload(id, crate::EvictionReason::Unload);
        }
    }

    /// Sets or clears the pin. Unpinning an idle model restarts its keep-alive.
    pub(crate) fn set_pinned(
        &mut self,
        id: &str,
        pinned: bool,
        now: Instant,
    ) -> Result<(), CacheError> {
        let e = self
            .entries
            .get_mut(id)
            .ok_or_else(|| CacheError::UnknownModel(id.to_owned()))?;
        e.pinned = pinned;
        if !pinned && e.idle_since.is_some() {
            e.idle_since = Some(now);
            self.check_idle(id, now);
        }
        Ok(())
    }

    /// Starts loads of the cold models among `ids`, with nobody waiting on them, and exempts
    /// them from keep-alive expiry: a replica stays ready however long it idles.
    pub(crate) fn preload(&mut self, ids: &[String], now: Instant) {
        for id in ids {
            let Some(e) = self.entries.get_mut(id.as_str()) else {
                continue;
            };
            e.preloaded = true;
            if e.phase.is_cold() {
                self.start_load(id, now);
            }
        }
        self.admit_all(now);
    }

    /// True when `id` is Ready.
    pub(crate) fn is_ready(&self, id: &str) -> bool {
        self.entries
            .get(id)
            .is_some_and(|e| matches!(e.phase, Phase::Ready(_)))
    }
}
