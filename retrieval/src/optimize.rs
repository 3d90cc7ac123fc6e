//! [`OptimizeScheduler`]: runs [`VectorStore::optimize`] in the background after ingestion,
//! bounded in queue length and in concurrent runs.
//!
//! Requests for a collection that is already queued are merged into the queued one, so a
//! burst of ingestion costs one index build. A full queue refuses at once (the caller may log
//! it; the next ingestion schedules again). Failures are logged and counted, never retried in
//! a loop.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, mpsc, watch};

use crate::store::VectorStore;

/// What [`OptimizeScheduler::schedule`] did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduled {
    /// Queued for a run.
    Queued,
    /// Already queued; merged into that run.
    Merged,
    /// The queue is full; nothing was queued.
    QueueFull,
    /// The scheduler's worker has stopped.
    Stopped,
}

/// Counters of finished runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OptimizeStats {
    pub succeeded: u64,
    pub failed: u64,
}

/// Handle to the background optimizer; cheap to clone.
#[derive(Clone, Debug)]
pub struct OptimizeScheduler {
    tx: mpsc::Sender<String>,
    shared: Arc<Shared>,
    finished: watch::Receiver<u64>,
}

#[derive(Debug, Default)]
struct Shared {
    queued: Mutex<HashSet<String>>,
    succeeded: AtomicU64,
    failed: AtomicU64,
}

impl OptimizeScheduler {
    /// Starts the worker on the current tokio runtime: at most `queue` collections wait and at
    /// most `concurrency` optimize at once (both at least 1).
    pub fn start(store: Arc<dyn VectorStore>, queue: usize, concurrency: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let shared = Arc::new(Shared::default());
        let (finished_tx, finished) = watch::channel(0);
        tokio::spawn(worker(
            store,
            rx,
            Arc::clone(&shared),
            Arc::new(Semaphore::new(concurrency.max(1))),
            finished_tx,
        ));
        Self {
            tx,
            shared,
            finished,
        }
    }

    /// Asks for `collection` to be optimized soon; never waits.
    pub fn schedule(&self, collection: &str) -> Scheduled {
        let mut queued = self
            .shared
            .queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if queued.contains(collection) {
            return Scheduled::Merged;
        }
        match self.tx.try_send(collection.to_owned()) {
            Ok(()) => {
                queued.insert(collection.to_owned());
                Scheduled::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => Scheduled::QueueFull,
            Err(mpsc::error::TrySendError::Closed(_)) => Scheduled::Stopped,
        }
    }

    /// Runs finished so far.
    pub fn stats(&self) -> OptimizeStats {
        OptimizeStats {
            succeeded: self.shared.succeeded.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
        }
    }

    /// Waits until at least `runs` runs have finished (succeeded or failed).
    pub async fn wait_finished(&self, runs: u64) {
        let mut finished = self.finished.clone();
        // An error means the worker is gone; nothing more will finish.
        let _ = finished.wait_for(|done| *done >= runs).await;
    }
}

async fn worker(
    store: Arc<dyn VectorStore>,
    mut rx: mpsc::Receiver<String>,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    finished: watch::Sender<u64>,
) {
    let finished = Arc::new(finished);
    while let Some(collection) = rx.recv().await {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        // From here on a new request for this collection queues a fresh run: data written
        // after this point may miss the run that is starting.
        shared
            .queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&collection);
        let store = Arc::clone(&store);
        let shared = Arc::clone(&shared);
        let finished = Arc::clone(&finished);
        tokio::spawn(async move {
            match store.optimize(&collection).await {
                Ok(built) => {
                    tracing::debug!(%collection, built, "vector store optimized");
                    shared.succeeded.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(%collection, error = %e, "vector store optimize failed");
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            finished.send_modify(|done| *done += 1);
            drop(permit);
        });
    }
}
