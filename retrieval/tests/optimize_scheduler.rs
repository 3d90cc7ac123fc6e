//! The background optimizer on a real embedded store: requests merge while queued, a full
//! queue refuses at once, and a run really builds the index.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed test, reported where it happens"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{DIM, MODEL, chunks};
use nfai_retrieval::{
    CollectionSpec, EdgeStore, EdgeStoreOptions, OptimizeScheduler, OptimizeStats, Scheduled,
    VectorStore,
};

async fn store(dir: &std::path::Path, names: &[&str]) -> EdgeStore {
    let options = EdgeStoreOptions {
        indexing_threshold_kb: Some(16),
        ..EdgeStoreOptions::default()
    };
    let store = EdgeStore::new(dir, options).unwrap();
    for name in names {
        let spec = CollectionSpec {
            model: MODEL.into(),
            dimension: DIM,
        };
        store.create_collection(name, spec).await.unwrap();
        store.upsert(name, chunks("file-a", 800)).await.unwrap();
    }
    store
}

#[tokio::test]
async fn queued_requests_merge_and_a_full_queue_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), &["vs_a", "vs_b"]).await;
    // On this single-threaded runtime the worker cannot start before the test yields, so the
    // queue state below is deterministic.
    let scheduler = OptimizeScheduler::start(Arc::new(store.clone()), 1, 1);
    assert_eq!(scheduler.schedule("vs_a"), Scheduled::Queued);
    assert_eq!(scheduler.schedule("vs_a"), Scheduled::Merged);
    assert_eq!(scheduler.schedule("vs_b"), Scheduled::QueueFull);

    tokio::time::timeout(Duration::from_secs(120), scheduler.wait_finished(1))
        .await
        .unwrap();
    assert_eq!(
        scheduler.stats(),
        OptimizeStats {
            succeeded: 1,
            failed: 0
        }
    );
    let a = store.open_collection("vs_a").await.unwrap();
    assert!(a.indexed_vectors >= 800, "{a:?}");
    let b = store.open_collection("vs_b").await.unwrap();
    assert_eq!(
        b.indexed_vectors, 0,
        "the refused request must not have run"
    );

    // Once the queue drains, the next request is accepted and runs.
    assert_eq!(scheduler.schedule("vs_b"), Scheduled::Queued);
    tokio::time::timeout(Duration::from_secs(120), scheduler.wait_finished(2))
        .await
        .unwrap();
    assert!(store.open_collection("vs_b").await.unwrap().indexed_vectors >= 800);
}

#[tokio::test]
async fn a_failing_run_is_counted_and_the_worker_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), &["vs_a"]).await;
    let scheduler = OptimizeScheduler::start(Arc::new(store.clone()), 4, 2);
    assert_eq!(scheduler.schedule("vs_missing"), Scheduled::Queued);
    assert_eq!(scheduler.schedule("vs_a"), Scheduled::Queued);
    tokio::time::timeout(Duration::from_secs(120), scheduler.wait_finished(2))
        .await
        .unwrap();
    assert_eq!(
        scheduler.stats(),
        OptimizeStats {
            succeeded: 1,
            failed: 1
        }
    );
}
