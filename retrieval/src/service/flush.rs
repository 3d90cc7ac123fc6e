//! Group commit of vector-store flushes. A file is recorded `completed` only once its chunks
//! are durable, and any flush that starts after its upsert returned makes them so: concurrent
//! ingestions of one store share a flush instead of queuing one each behind the store's
//! write and optimize gates.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Result;

/// Tickets for completed writes, and per store the tickets a flush has covered.
#[derive(Debug, Default)]
pub(super) struct FlushGroup {
    /// Writes handed a ticket so far; the next ticket.
    tickets: AtomicU64,
    /// Per store: every write whose ticket is below the value is durable. The async lock is
    /// held while that store flushes.
    stores: Mutex<HashMap<String, Arc<tokio::sync::Mutex<u64>>>>,
}

/// A write that has returned and still needs a flush.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket(u64);

impl FlushGroup {
    /// Takes a ticket for a write that has already returned.
    pub(super) fn written(&self) -> Ticket {
        Ticket(self.tickets.fetch_add(1, Ordering::SeqCst))
    }

    /// Returns once a flush of `store_id` that started after `ticket` was taken has succeeded:
    /// one already made while this call waited, or one made now.
    /// `flush` makes every write to the store that has returned durable.
    pub(super) async fn flush<F, Fut>(&self, store_id: &str, ticket: Ticket, flush: F) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let slot = self.slot(store_id);
        let mut durable = slot.lock().await;
        if *durable > ticket.0 {
            return Ok(());
        }
        // Every ticket below this one was taken after its write returned: this flush covers it.
        let covers = self.tickets.load(Ordering::SeqCst);
        flush().await?;
        *durable = covers;
        Ok(())
    }

    fn slot(&self, store_id: &str) -> Arc<tokio::sync::Mutex<u64>> {
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        // Stores nobody is flushing now are forgotten; a forgotten store flushes again.
        stores.retain(|_, slot| Arc::strong_count(slot) > 1);
        Arc::clone(stores.entry(store_id.to_owned()).or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A flush that takes a while, so that writers pile up behind it; counts the flushes.
    async fn slow(count: &AtomicU64) -> Result<()> {
        count.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    }

    fn spawn_write(
        group: &Arc<FlushGroup>,
        count: &Arc<AtomicU64>,
        store: &'static str,
    ) -> tokio::task::JoinHandle<Result<()>> {
        let (group, count) = (Arc::clone(group), Arc::clone(count));
        let ticket = group.written();
        tokio::spawn(async move { group.flush(store, ticket, || slow(&count)).await })
    }

    #[tokio::test]
    async fn writers_waiting_on_one_flush_share_the_next() {
        let group = Arc::new(FlushGroup::default());
        let count = Arc::new(AtomicU64::new(0));
        // The first write's flush is under way when eight more writes return.
        let first = spawn_write(&group, &count, "s");
        tokio::time::sleep(Duration::from_millis(10)).await;
        let waiting: Vec<_> = (0..8).map(|_| spawn_write(&group, &count, "s")).collect();
        first.await.unwrap().unwrap();
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        // One flush for the first write, one that covers the eight taken during it.
        assert_eq!(count.load(Ordering::SeqCst), 2);
        // A later write needs a flush of its own.
        spawn_write(&group, &count, "s").await.unwrap().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_flush_of_another_store_covers_nothing_here() {
        let group = Arc::new(FlushGroup::default());
        let count = Arc::new(AtomicU64::new(0));
        let a = spawn_write(&group, &count, "a");
        let b = spawn_write(&group, &count, "b");
        tokio::time::sleep(Duration::from_millis(10)).await;
        let a2 = spawn_write(&group, &count, "a");
        for w in [a, b, a2] {
            w.await.unwrap().unwrap();
        }
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_flush_covers_nothing() {
        let group = FlushGroup::default();
        let ticket = group.written();
        let failed = group
            .flush("s", ticket, || async {
                Err(crate::error::RetrievalError::Storage("disk full".into()))
            })
            .await;
        assert!(failed.is_err());
        let count = AtomicU64::new(0);
        group.flush("s", ticket, || slow(&count)).await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
