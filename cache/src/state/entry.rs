//! One model's record in the state: its internal [`Phase`] (finer than the public
//! [`crate::ModelState`]), its waiters and counters, and the per-entry rules (granting a lease,
//! failing waiters, idle and expiry checks).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{AcquireReply, LoadReply, UnloadReply};
use crate::lease::{Lease, Slot};
use crate::metrics::ModelCounters;
use crate::{CacheError, KeepAlive, ModelSpec};

/// Internal residency, finer than the public [`crate::ModelState`].
pub(crate) enum Phase<M> {
    Unloaded,
    /// The last load or estimate failed; the error is in `last_error`.
    Failed,
    /// `Loader::estimate` is running (no memory charged yet).
    Estimating,
    /// Charged with its planned size, waiting for evictions to free the room.
    WaitingForRoom,
    /// `Loader::load` is running.
    Loading,
    /// Loaded and granting leases.
    Ready(Arc<M>),
    /// An unload was asked for: no new leases, waiting for the held ones to drop.
    Draining(Arc<M>),
    /// `Loader::unload` is running; still charged until it returns.
    Unloading,
}

impl<M> Phase<M> {
    /// True while the entry holds (or has reserved) memory on its device.
    pub(super) fn is_charged(&self) -> bool {
        !matches!(self, Phase::Unloaded | Phase::Failed | Phase::Estimating)
    }

    /// True when nothing is in flight and a load may start.
    pub(super) fn is_cold(&self) -> bool {
        matches!(self, Phase::Unloaded | Phase::Failed)
    }
}

/// An unload call waiting for leases to drop.
pub(crate) struct UnloadWaiter {
    /// When it gives up with [`CacheError::Busy`]; `None` never.
    pub(super) deadline: Option<Instant>,
    pub(super) reply: UnloadReply,
}

/// One model: its spec, residency, waiters and counters.
pub(crate) struct Entry<M> {
    pub(super) spec: ModelSpec,
    pub(super) phase: Phase<M>,
    pub(super) pinned: bool,
    /// Loaded at start for readiness: never unloaded by its keep-alive running out (memory
    /// pressure may still evict it; it then loads again on demand).
    pub(super) preloaded: bool,
    pub(super) keep_alive: KeepAlive,
    /// The loader's last estimate.
    pub(super) estimated: Option<u64>,
    /// The size the last successful load reported; preferred over `estimated` for planning.
    pub(super) actual: Option<u64>,
    /// Bytes charged on the device while `phase.is_charged()`.
    pub(super) charged: u64,
    /// Increments with every load; completions from another generation are stale.
    pub(super) generation: u64,
    /// Lease count of the loaded instance (Ready and Draining only).
    pub(super) slot: Option<Arc<Slot>>,
    pub(super) acquirers: Vec<AcquireReply<M>>,
    pub(super) loaders: Vec<LoadReply>,
    pub(super) unloaders: Vec<UnloadWaiter>,
    /// A forced unload is pending: unload as soon as the leases drop, whatever the timeout.
    pub(super) force_unload: bool,
    /// When the last lease dropped (Ready with no leases); the keep-alive counts from here.
    pub(super) idle_since: Option<Instant>,
    pub(super) last_used: Option<Instant>,
    pub(super) loaded_at: Option<Instant>,
    pub(super) load_duration: Option<Duration>,
    pub(super) requests_served: u64,
    pub(super) last_error: Option<String>,
    pub(super) counters: ModelCounters,
}

impl<M> Entry<M> {
    pub(super) fn new(spec: ModelSpec, default_keep_alive: KeepAlive) -> Self {
        Entry {
            keep_alive: spec.keep_alive.unwrap_or(default_keep_alive),
            pinned: spec.pinned,
            preloaded: false,
            spec,
            phase: Phase::Unloaded,
            estimated: None,
            actual: None,
            charged: 0,
            generation: 0,
            slot: None,
            acquirers: Vec::new(),
            loaders: Vec::new(),
            unloaders: Vec::new(),
            force_unload: false,
            idle_since: None,
            last_used: None,
            loaded_at: None,
            load_duration: None,
            requests_served: 0,
            last_error: None,
            counters: ModelCounters::default(),
        }
    }

    /// Leases held on the loaded instance.
    pub(super) fn leases(&self) -> usize {
        self.slot.as_ref().map_or(0, |s| s.leases())
    }

    /// Drops waiters whose callers gave up, then counts the rest.
    pub(super) fn live_waiters(&mut self) -> usize {
        self.acquirers.retain(|r| !r.is_closed());
        self.loaders.retain(|r| !r.is_closed());
        self.acquirers.len() + self.loaders.len()
    }

    /// Idle, unpinned and Ready: may be evicted to make room or expire.
    pub(super) fn is_evictable(&self) -> bool {
        matches!(self.phase, Phase::Ready(_)) && !self.pinned && self.leases() == 0
    }

    /// When an idle model unloads by itself, if it does (a preloaded one never does).
    pub(super) fn expires_at(&self) -> Option<Instant> {
        if !self.is_evictable() || self.preloaded {
            return None;
        }
        let idle = self.idle_since?;
        idle.checked_add(self.keep_alive.duration()?)
    }

    /// Deadlines of the unload calls waiting for leases to drop. None while the loader's unload
    /// runs: those calls complete when it returns.
    pub(super) fn timeouts(&self) -> impl Iterator<Item = Instant> + '_ {
        let active = !matches!(self.phase, Phase::Unloading);
        self.unloaders
            .iter()
            .filter(move |_| active)
            .filter_map(|w| w.deadline)
    }

    /// Hands a lease to `reply` if the model is Ready and the caller still waits.
    pub(super) fn grant(&mut self, reply: AcquireReply<M>, now: Instant) {
        let (Phase::Ready(model), Some(slot)) = (&self.phase, &self.slot) else {
            return;
        };
        if reply.is_closed() {
            return;
        }
        let lease = Lease::grant(Arc::clone(model), slot);
        // A caller that gave up in the meantime gets nothing; its lease drops right here.
        if reply.send(Ok(lease)).is_ok() {
            self.requests_served += 1;
            self.last_used = Some(now);
            self.idle_since = None;
        }
    }

    /// Fails every acquire and load waiter with `err`; unload waiters succeed (nothing is
    /// loaded).
    pub(super) fn fail_waiters(&mut self, err: &CacheError) {
        for reply in self.acquirers.drain(..) {
            let _ = reply.send(Err(err.clone()));
        }
        for reply in self.loaders.drain(..) {
            let _ = reply.send(Err(err.clone()));
        }
        self.finish_unloaders();
    }

    /// Completes every pending unload call successfully.
    pub(super) fn finish_unloaders(&mut self) {
        for w in self.unloaders.drain(..) {
            let _ = w.reply.send(Ok(()));
        }
        self.force_unload = false;
    }
}
