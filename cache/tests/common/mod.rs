//! A fake loader for the cache's tests: configurable sizes, delays, failures and gates, and
//! counts of every call; models track whether they are still alive.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use nfai_cache::{CacheConfig, DeviceId, Loader, ModelCache, ModelSpec, ModelState, ModelStatus};

/// A loaded fake model; `alive` counts instances not yet dropped.
pub struct FakeModel {
    pub id: String,
    alive: Arc<AtomicUsize>,
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A gate that blocks loads until opened.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.changed.notify_all();
    }

    fn wait(&self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        while !*open {
            open = self
                .changed
                .wait(open)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[derive(Default)]
pub struct FakeLoader {
    /// (estimate, actual) per id; missing ids take (1, 1).
    pub sizes: Mutex<HashMap<String, (u64, u64)>>,
    /// Real time each load takes.
    pub delay: Duration,
    pub failing: Mutex<HashSet<String>>,
    /// Loads of these ids wait for the gate.
    pub gated: Mutex<HashSet<String>>,
    pub gate: Gate,
    pub estimates: Mutex<Vec<String>>,
    pub loads: Mutex<Vec<String>>,
    pub unloads: Mutex<Vec<String>>,
    pub alive: Arc<AtomicUsize>,
}

impl FakeLoader {
    pub fn with_delay(delay: Duration) -> Self {
        FakeLoader {
            delay,
            ..FakeLoader::default()
        }
    }

    pub fn size(&self, id: &str, estimate: u64, actual: u64) {
        self.sizes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), (estimate, actual));
    }

    pub fn count(list: &Mutex<Vec<String>>, id: &str) -> usize {
        list.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|x| *x == id)
            .count()
    }

    pub fn loads_of(&self, id: &str) -> usize {
        Self::count(&self.loads, id)
    }
}

impl Loader for FakeLoader {
    type Model = FakeModel;

    fn estimate(&self, spec: &ModelSpec) -> Result<u64, String> {
        self.estimates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(spec.id.clone());
        Ok(self
            .sizes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&spec.id)
            .map_or(1, |s| s.0))
    }

    fn load(&self, spec: &ModelSpec) -> Result<(FakeModel, u64), String> {
        self.loads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(spec.id.clone());
        if self
            .gated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&spec.id)
        {
            self.gate.wait();
        }
        std::thread::sleep(self.delay);
        if self
            .failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&spec.id)
        {
            return Err(format!("{} is broken", spec.id));
        }
        let bytes = self
            .sizes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&spec.id)
            .map_or(1, |s| s.1);
        self.alive.fetch_add(1, Ordering::SeqCst);
        Ok((
            FakeModel {
                id: spec.id.clone(),
                alive: Arc::clone(&self.alive),
            },
            bytes,
        ))
    }

    fn unload(&self, spec: &ModelSpec, model: FakeModel) {
        self.unloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(spec.id.clone());
        drop(model);
    }
}

pub fn specs(ids: &[&str]) -> Vec<ModelSpec> {
    ids.iter()
        .map(|id| ModelSpec::new(*id, DeviceId::Cpu))
        .collect()
}

/// A config with a CPU budget of `budget` bytes.
pub fn budget(budget: u64) -> CacheConfig {
    CacheConfig {
        budgets: HashMap::from([(DeviceId::Cpu, budget)]),
        ..CacheConfig::default()
    }
}

pub async fn status_of(cache: &ModelCache<FakeLoader>, id: &str) -> ModelStatus {
    let all = cache
        .status()
        .await
        .unwrap_or_else(|e| panic!("status: {e}"));
    all.into_iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no model {id}"))
}

/// Yields until `id` reaches `state` (the actor and the blocking threads run meanwhile);
/// never advances a paused clock.
pub async fn wait_for(cache: &ModelCache<FakeLoader>, id: &str, state: ModelState) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if status_of(cache, id).await.state == state {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never reached {state:?}"
        );
        tokio::task::yield_now().await;
    }
}
