//! The cache through its handle: single-flight loads, failures, waiter limits, abandoned
//! waiters, isolation between models, preload, metrics and a stopped actor.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{FakeLoader, budget, specs, status_of, wait_for};
use nfai_cache::{
    AcquireOptions, CacheConfig, CacheError, ModelCache, ModelState, default_cpu_budget,
};

#[tokio::test(start_paused = true)]
async fn hundred_concurrent_acquires_cause_one_load() {
    let loader = Arc::new(FakeLoader::with_delay(Duration::from_millis(50)));
    let cache = ModelCache::start(Arc::clone(&loader), specs(&["a"]), CacheConfig::default());
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.acquire("a", AcquireOptions::default()).await })
        })
        .collect();
    let mut leases = Vec::new();
    for task in tasks {
        leases.push(task.await.unwrap().unwrap());
    }
    assert!(leases.iter().all(|l| l.id == "a"));
    assert_eq!(loader.loads_of("a"), 1);
    assert_eq!(FakeLoader::count(&loader.estimates, "a"), 1);
    let status = status_of(&cache, "a").await;
    assert_eq!(
        (status.state, status.in_flight, status.requests_served),
        (ModelState::Ready, 100, 100)
    );
    assert!(status.load_duration.unwrap() >= Duration::from_millis(50));
    drop(leases);
    tokio::task::yield_now().await;
    assert_eq!(status_of(&cache, "a").await.in_flight, 0);
}

#[tokio::test]
async fn a_failed_load_reaches_every_waiter_and_the_next_acquire_retries() {
    let loader = Arc::new(FakeLoader::with_delay(Duration::from_millis(20)));
    loader.failing.lock().unwrap().insert("a".into());
    let cache = ModelCache::start(Arc::clone(&loader), specs(&["a"]), CacheConfig::default());
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.acquire("a", AcquireOptions::default()).await.err() })
        })
        .collect();
    for task in tasks {
        let want = CacheError::LoadFailed {
            model: "a".into(),
            cause: "a is broken".into(),
        };
        assert_eq!(task.await.unwrap(), Some(want));
    }
    assert_eq!(loader.loads_of("a"), 1);
    let status = status_of(&cache, "a").await;
    assert_eq!(
        (status.state, status.last_error.as_deref()),
        (ModelState::Failed, Some("a is broken"))
    );

    loader.failing.lock().unwrap().clear();
    let lease = cache.acquire("a", AcquireOptions::default()).await.unwrap();
    assert_eq!(lease.model_id(), "a");
    assert_eq!(loader.loads_of("a"), 2);
    let metrics = cache.metrics().await.unwrap();
    let counters = &metrics.models[0].counters;
    assert_eq!((counters.loads_success, counters.loads_failure), (1, 1));
    assert_eq!(counters.load_seconds.count, 1);
}

#[tokio::test]
async fn too_many_waiters_fail_at_once_and_abandoned_waiters_do_not_leak() {
    let loader = Arc::new(FakeLoader::default());
    loader.gated.lock().unwrap().insert("a".into());
    let config = CacheConfig {
        max_waiters: 4,
        ..CacheConfig::default()
    };
    let cache = ModelCache::start(Arc::clone(&loader), specs(&["a"]), config);
    let waiting: Vec<_> = (0..4)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.acquire("a", AcquireOptions::default()).await })
        })
        .collect();
    while status_of(&cache, "a").await.waiters < 4 {
        tokio::task::yield_now().await;
    }
    let err = cache.acquire("a", AcquireOptions::default()).await.err();
    assert_eq!(
        err,
        Some(CacheError::TooManyWaiters {
            model: "a".into(),
            limit: 4
        })
    );

    // Callers that give up (their futures dropped) free their places.
    for task in &waiting {
        task.abort();
    }
    for task in waiting {
        assert!(task.await.unwrap_err().is_cancelled());
    }
    assert_eq!(status_of(&cache, "a").await.waiters, 0);
    let kept = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.acquire("a", AcquireOptions::default()).await })
    };
    loader.gate.open();
    let lease = kept.await.unwrap().unwrap();
    let status = status_of(&cache, "a").await;
    assert_eq!(
        (status.requests_served, status.in_flight, status.waiters),
        (1, 1, 0)
    );
    assert_eq!(loader.loads_of("a"), 1);
    drop(lease);
}

#[tokio::test]
async fn a_model_that_always_fails_does_not_block_the_others() {
    let loader = Arc::new(FakeLoader::default());
    loader.failing.lock().unwrap().insert("bad".into());
    loader.gated.lock().unwrap().insert("bad".into());
    let cache = ModelCache::start(Arc::clone(&loader), specs(&["bad", "good"]), budget(10));
    let bad = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.acquire("bad", AcquireOptions::default()).await.err() })
    };
    wait_for(&cache, "bad", ModelState::Loading).await;
    // While the bad load hangs, the good model loads and serves.
    for _ in 0..3 {
        let lease = cache
            .acquire("good", AcquireOptions::default())
            .await
            .unwrap();
        assert_eq!(lease.id, "good");
    }
    loader.gate.open();
    assert!(matches!(
        bad.await.unwrap(),
        Some(CacheError::LoadFailed { .. })
    ));
    for _ in 0..3 {
        let err = cache.acquire("bad", AcquireOptions::default()).await.err();
        assert!(matches!(err, Some(CacheError::LoadFailed { .. })));
        assert!(
            cache
                .acquire("good", AcquireOptions::default())
                .await
                .is_ok()
        );
    }
    assert_eq!(loader.loads_of("good"), 1);
    assert_eq!(loader.loads_of("bad"), 4);
    assert_eq!(cache.memory().await.unwrap()[0].used, 1);
}

#[tokio::test]
async fn preload_returns_at_once_and_is_ready_follows() {
    let loader = Arc::new(FakeLoader::default());
    loader.gated.lock().unwrap().insert("a".into());
    let cache = ModelCache::start(
        Arc::clone(&loader),
        specs(&["a", "b"]),
        CacheConfig::default(),
    );
    assert_eq!(
        cache.preload(["a", "nope"]).await,
        Err(CacheError::UnknownModel("nope".into()))
    );
    cache.preload(["a", "b"]).await.unwrap();
    wait_for(&cache, "b", ModelState::Ready).await;
    assert!(!cache.is_ready("a").await.unwrap());
    loader.gate.open();
    wait_for(&cache, "a", ModelState::Ready).await;
    assert!(cache.is_ready("a").await.unwrap());
    assert!(!cache.is_ready("nope").await.unwrap());
    assert_eq!(loader.loads_of("a"), 1);
    let err = cache.acquire("nope", AcquireOptions::default()).await.err();
    assert_eq!(err, Some(CacheError::UnknownModel("nope".into())));
    assert!(cache.contains("a") && !cache.contains("nope"));
    let metrics = cache.metrics().await.unwrap();
    let states: Vec<_> = metrics.models.iter().map(|m| m.state.as_str()).collect();
    assert_eq!(states, ["ready", "ready"]);
}

#[test]
fn a_stopped_actor_is_an_error_not_a_hang() {
    let loader = Arc::new(FakeLoader::default());
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = first.block_on(async {
        let cache = ModelCache::start(Arc::clone(&loader), specs(&["a"]), CacheConfig::default());
        let lease = cache.acquire("a", AcquireOptions::default()).await.unwrap();
        assert_eq!(lease.id, "a");
        cache
    });
    // Shutting the runtime down drops the actor task.
    drop(first);
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        let err = cache.acquire("a", AcquireOptions::default()).await.err();
        assert_eq!(err, Some(CacheError::Stopped));
        assert_eq!(cache.status().await.err(), Some(CacheError::Stopped));
    });
    assert_eq!(loader.alive.load(Ordering::SeqCst), 0);
}

#[test]
fn default_cpu_budget_is_a_share_of_available_memory() {
    let half = default_cpu_budget(0.5);
    assert!(half > 0);
    assert_eq!(default_cpu_budget(0.0), 0);
}

#[test]
fn handles_leases_and_futures_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<ModelCache<FakeLoader>>();
    send_sync::<nfai_cache::Lease<common::FakeModel>>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = ModelCache::start(
            Arc::new(FakeLoader::default()),
            specs(&["a"]),
            CacheConfig::default(),
        );
        let acquire = cache.acquire("a", AcquireOptions::default());
        send(&acquire);
        drop(acquire);
    });
}
