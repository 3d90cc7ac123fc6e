//! The cache through its handle over (paused) time: keep-alive expiry, keep-alive zero and
//! forever, unload with leases (wait, timeout, force), eviction and refusal, and actual sizes.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use common::{FakeLoader, budget, specs, status_of, wait_for};
use nfai_cache::{
    AcquireOptions, CacheConfig, CacheError, DeviceId, EvictionReason, KeepAlive, LoadOptions,
    ModelCache, ModelSpec, ModelState, UnloadOptions,
};
use tokio::time::sleep;

fn keep(ka: KeepAlive) -> AcquireOptions {
    AcquireOptions {
        keep_alive: Some(ka),
    }
}

#[tokio::test(start_paused = true)]
async fn idle_models_expire_after_their_keep_alive() {
    let loader = Arc::new(FakeLoader::default());
    let mut all = specs(&["default", "catalog"]);
    all[1].keep_alive = Some(KeepAlive::Duration(Duration::from_secs(60)));
    let cache = ModelCache::start(Arc::clone(&loader), all, CacheConfig::default());
    drop(
        cache
            .acquire("default", AcquireOptions::default())
            .await
            .unwrap(),
    );
    drop(
        cache
            .acquire("catalog", AcquireOptions::default())
            .await
            .unwrap(),
    );
    tokio::task::yield_now().await;
    let expires = status_of(&cache, "default").await.expires_at.unwrap();
    let in_five = SystemTime::now() + Duration::from_secs(300);
    let skew = expires
        .duration_since(in_five)
        .or_else(|e| Ok::<_, ()>(e.duration()));
    assert!(skew.unwrap() < Duration::from_secs(1));

    sleep(Duration::from_secs(59)).await;
    assert_eq!(status_of(&cache, "catalog").await.state, ModelState::Ready);
    sleep(Duration::from_secs(2)).await;
    wait_for(&cache, "catalog", ModelState::Unloaded).await;
    assert_eq!(status_of(&cache, "default").await.state, ModelState::Ready);
    sleep(Duration::from_secs(240)).await;
    wait_for(&cache, "default", ModelState::Unloaded).await;
    assert_eq!(loader.alive.load(Ordering::SeqCst), 0);
    let metrics = cache.metrics().await.unwrap();
    assert!(
        metrics
            .models
            .iter()
            .all(|m| m.counters.evictions.get(EvictionReason::Expired) == 1)
    );
    assert_eq!(metrics.devices[0].used, 0);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_zero_unloads_after_the_last_lease_and_forever_never_expires() {
    let loader = Arc::new(FakeLoader::default());
    let cache = ModelCache::start(
        Arc::clone(&loader),
        specs(&["zero", "forever"]),
        CacheConfig::default(),
    );
    let zero = KeepAlive::Duration(Duration::ZERO);
    let first = cache.acquire("zero", keep(zero)).await.unwrap();
    let second = cache.acquire("zero", keep(zero)).await.unwrap();
    drop(first);
    tokio::task::yield_now().await;
    assert_eq!(status_of(&cache, "zero").await.state, ModelState::Ready);
    drop(second);
    wait_for(&cache, "zero", ModelState::Unloaded).await;
    assert_eq!(FakeLoader::count(&loader.unloads, "zero"), 1);

    drop(
        cache
            .acquire("forever", keep(KeepAlive::Forever))
            .await
            .unwrap(),
    );
    sleep(Duration::from_secs(10 * 365 * 24 * 3600)).await;
    let status = status_of(&cache, "forever").await;
    assert_eq!(
        (status.state, status.expires_at, status.keep_alive),
        (ModelState::Ready, None, KeepAlive::Forever)
    );
}

#[tokio::test(start_paused = true)]
async fn unload_waits_for_leases_times_out_busy_and_force_works() {
    let loader = Arc::new(FakeLoader::default());
    let cache = ModelCache::start(Arc::clone(&loader), specs(&["a"]), CacheConfig::default());
    let lease = cache.acquire("a", AcquireOptions::default()).await.unwrap();

    // Times out while the lease is held; the model stays.
    let opts = UnloadOptions {
        force: false,
        timeout: Duration::from_secs(2),
    };
    let err = cache.unload("a", opts.clone()).await.err();
    assert_eq!(
        err,
        Some(CacheError::Busy {
            model: "a".into(),
            in_flight: 1
        })
    );
    assert_eq!(status_of(&cache, "a").await.state, ModelState::Ready);

    // Waits, then succeeds once the lease drops.
    let unload = {
        let (cache, opts) = (
            cache.clone(),
            UnloadOptions {
                timeout: Duration::from_secs(60),
                ..opts
            },
        );
        tokio::spawn(async move { cache.unload("a", opts).await })
    };
    sleep(Duration::from_secs(1)).await;
    assert!(!unload.is_finished());
    assert_eq!(status_of(&cache, "a").await.state, ModelState::Unloading);
    drop(lease);
    assert_eq!(unload.await.unwrap(), Ok(()));
    assert_eq!(status_of(&cache, "a").await.state, ModelState::Unloaded);

    // Force returns at once; the model keeps serving the held lease until it drops.
    let lease = cache.acquire("a", AcquireOptions::default()).await.unwrap();
    let force = UnloadOptions {
        force: true,
        timeout: Duration::ZERO,
    };
    assert_eq!(cache.unload("a", force).await, Ok(()));
    assert_eq!(lease.id, "a");
    assert_eq!(loader.alive.load(Ordering::SeqCst), 1);
    assert_eq!(cache.memory().await.unwrap()[0].used, 1);
    drop(lease);
    wait_for(&cache, "a", ModelState::Unloaded).await;
    assert_eq!(loader.alive.load(Ordering::SeqCst), 0);
    assert_eq!(cache.memory().await.unwrap()[0].used, 0);
    let metrics = cache.metrics().await.unwrap();
    assert_eq!(
        metrics.models[0]
            .counters
            .evictions
            .get(EvictionReason::Unload),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn eviction_is_lru_spares_pinned_and_leased_and_refusal_evicts_nothing() {
    let loader = Arc::new(FakeLoader::default());
    for id in ["pinned", "leased", "old", "new", "next"] {
        loader.size(id, 10, 10);
    }
    loader.size("huge", 25, 25);
    let ids = ["pinned", "leased", "old", "new", "next", "huge"];
    let config = CacheConfig {
        max_loaded_per_device: 8,
        ..budget(40)
    };
    let cache = ModelCache::start(Arc::clone(&loader), specs(&ids), config);
    let pin = LoadOptions {
        keep_alive: None,
        pin: true,
    };
    assert_eq!(
        cache.load("pinned", pin).await.unwrap().state,
        ModelState::Ready
    );
    let held = cache
        .acquire("leased", AcquireOptions::default())
        .await
        .unwrap();
    drop(
        cache
            .acquire("old", AcquireOptions::default())
            .await
            .unwrap(),
    );
    sleep(Duration::from_secs(1)).await;
    drop(
        cache
            .acquire("new", AcquireOptions::default())
            .await
            .unwrap(),
    );
    sleep(Duration::from_secs(1)).await;

    // 30 would be needed after evicting both idle models: refused, nothing evicted.
    let err = cache.acquire("huge", AcquireOptions::default()).await.err();
    let want = CacheError::InsufficientMemory {
        model: "huge".into(),
        device: DeviceId::Cpu,
        needed: 25,
        available: 20,
    };
    assert_eq!(err, Some(want));
    assert!(loader.unloads.lock().unwrap().is_empty());

    // The least recently used idle model makes room.
    let lease = cache
        .acquire("next", AcquireOptions::default())
        .await
        .unwrap();
    assert_eq!(*loader.unloads.lock().unwrap(), ["old"]);
    let memory = &cache.memory().await.unwrap()[0];
    assert_eq!(
        (memory.used, memory.free, memory.budget),
        (40, Some(0), Some(40))
    );
    assert_eq!(memory.resident, ["leased", "new", "next", "pinned"]);
    drop((held, lease));
}

#[tokio::test(start_paused = true)]
async fn max_loaded_per_device_evicts_by_count() {
    let loader = Arc::new(FakeLoader::default());
    let config = CacheConfig {
        max_loaded_per_device: 2,
        ..CacheConfig::default()
    };
    let cache = ModelCache::start(Arc::clone(&loader), specs(&["a", "b", "c"]), config);
    for id in ["a", "b", "c"] {
        drop(cache.acquire(id, AcquireOptions::default()).await.unwrap());
        sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(*loader.unloads.lock().unwrap(), ["a"]);
    let memory = &cache.memory().await.unwrap()[0];
    assert_eq!(
        (memory.budget, memory.resident.clone()),
        (None, vec!["b".to_owned(), "c".to_owned()])
    );
    let metrics = cache.metrics().await.unwrap();
    assert_eq!(
        metrics.models[0]
            .counters
            .evictions
            .get(EvictionReason::Lru),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn actual_size_replaces_the_estimate_for_the_next_load() {
    let loader = Arc::new(FakeLoader::default());
    loader.size("a", 10, 30);
    let mut all = specs(&["a"]);
    all.push(ModelSpec {
        pinned: true,
        ..ModelSpec::new("b", DeviceId::Cpu)
    });
    let cache = ModelCache::start(Arc::clone(&loader), all, budget(100));
    drop(cache.acquire("a", AcquireOptions::default()).await.unwrap());
    let status = status_of(&cache, "a").await;
    assert_eq!(
        (status.estimated_bytes, status.actual_bytes),
        (Some(30), Some(30))
    );
    cache.unload("a", UnloadOptions::default()).await.unwrap();
    assert_eq!(cache.memory().await.unwrap()[0].used, 0);
    drop(cache.acquire("a", AcquireOptions::default()).await.unwrap());
    assert_eq!(FakeLoader::count(&loader.estimates, "a"), 1);
    assert_eq!(loader.loads_of("a"), 2);
    assert_eq!(cache.memory().await.unwrap()[0].used, 30);
    // A pinned spec stays pinned across loads and never expires.
    drop(cache.acquire("b", AcquireOptions::default()).await.unwrap());
    sleep(Duration::from_secs(3600)).await;
    let b = status_of(&cache, "b").await;
    assert_eq!((b.state, b.pinned), (ModelState::Ready, true));
    cache.unpin("b").await.unwrap();
    sleep(Duration::from_secs(301)).await;
    wait_for(&cache, "b", ModelState::Unloaded).await;
}
