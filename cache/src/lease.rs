//! Leases: a caller's hold on a loaded model. A model with leases is never evicted.
//!
//! Release design: every loaded instance has a shared [`Slot`] with an atomic lease count. The
//! actor (the only one that grants) increments it; dropping a [`Lease`] decrements it and, when
//! the count reaches zero, wakes the actor through a shared `tokio::sync::Notify`
//! (`notify_one` stores a permit, so a wake-up is never lost and never blocks). Dropping a
//! lease therefore needs no channel capacity and cannot fail; the actor then scans the slots to
//! find the models that became idle.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The lease count of one loaded instance, shared by its leases and the actor.
#[derive(Debug)]
pub(crate) struct Slot {
    id: Arc<str>,
    leases: AtomicUsize,
    notify: Arc<Notify>,
}

impl Slot {
    pub(crate) fn new(id: &str, notify: Arc<Notify>) -> Arc<Slot> {
        Arc::new(Slot {
            id: Arc::from(id),
            leases: AtomicUsize::new(0),
            notify,
        })
    }

    /// Leases currently held.
    pub(crate) fn leases(&self) -> usize {
        self.leases.load(Ordering::Acquire)
    }
}

/// A hold on a loaded model; derefs to the model. Dropping it is all a caller does: the model
/// becomes evictable again once its last lease is dropped, and its keep-alive starts then.
pub struct Lease<M> {
    // Field order matters: `model` drops before `guard`, so when the actor sees the count at
    // zero no lease still holds a reference and the model can be unwrapped for unloading.
    model: Arc<M>,
    guard: ReleaseGuard,
}

impl<M> Lease<M> {
    /// Takes a new lease on `model` (called by the actor only).
    pub(crate) fn grant(model: Arc<M>, slot: &Arc<Slot>) -> Lease<M> {
        slot.leases.fetch_add(1, Ordering::AcqRel);
        Lease {
            model,
            guard: ReleaseGuard(Arc::clone(slot)),
        }
    }

    /// The id of the leased model.
    pub fn model_id(&self) -> &str {
        &self.guard.0.id
    }
}

impl<M> Deref for Lease<M> {
    type Target = M;

    fn deref(&self) -> &M {
        &self.model
    }
}

impl<M> fmt::Debug for Lease<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("model", &self.model_id())
            .finish()
    }
}

/// Decrements the slot's count on drop and wakes the actor when it reaches zero.
struct ReleaseGuard(Arc<Slot>);

impl Drop for ReleaseGuard {
    fn drop(&mut self) {
        if self.0.leases.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_and_wake_on_last_drop() {
        let notify = Arc::new(Notify::new());
        let slot = Slot::new("m", Arc::clone(&notify));
        let model = Arc::new(41_u32);
        let a = Lease::grant(Arc::clone(&model), &slot);
        let b = Lease::grant(Arc::clone(&model), &slot);
        assert_eq!((*a + 1, b.model_id(), slot.leases()), (42, "m", 2));
        drop(a);
        assert_eq!(slot.leases(), 1);
        drop(b);
        assert_eq!(slot.leases(), 0);
        // The leases' references are gone before the count reached zero.
        assert_eq!(Arc::strong_count(&model), 1);
        // The wake-up was stored as a permit: this completes at once.
        let rt = tokio::runtime::Builder::new_current_thread().build();
        let rt = rt.unwrap_or_else(|e| panic!("runtime: {e}"));
        rt.block_on(notify.notified());
    }
}
