//! Acquire + release of a lease on a Ready model: one command round trip to the actor, then
//! the lease's drop (an atomic decrement and a wake-up of the actor).
//!
//! `cargo bench -p nfai-cache --bench acquire`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use nfai_cache::{AcquireOptions, CacheConfig, DeviceId, Loader, ModelCache, ModelSpec};
use tokio::runtime::Runtime;

struct Instant0;

impl Loader for Instant0 {
    type Model = u64;

    fn estimate(&self, _: &ModelSpec) -> Result<u64, String> {
        Ok(1)
    }

    fn load(&self, _: &ModelSpec) -> Result<(u64, u64), String> {
        Ok((42, 1))
    }
}

fn bench_on(c: &mut Criterion, name: &str, rt: &Runtime) {
    let cache = rt.block_on(async {
        let specs = vec![ModelSpec::new("m", DeviceId::Cpu)];
        let cache = ModelCache::start(Arc::new(Instant0), specs, CacheConfig::default());
        let warm = cache.acquire("m", AcquireOptions::default()).await;
        drop(warm.unwrap_or_else(|e| panic!("{e}")));
        cache
    });
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let lease = cache.acquire("m", AcquireOptions::default()).await;
                    let lease = lease.unwrap_or_else(|e| panic!("{e}"));
                    black_box(*lease);
                    drop(lease);
                }
                start.elapsed()
            })
        })
    });
}

fn bench_acquire(c: &mut Criterion) {
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let multi = multi.unwrap_or_else(|e| panic!("runtime: {e}"));
    bench_on(c, "acquire_release/multi_thread", &multi);
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let single = single.unwrap_or_else(|e| panic!("runtime: {e}"));
    bench_on(c, "acquire_release/current_thread", &single);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench_acquire
}
criterion_main!(benches);
