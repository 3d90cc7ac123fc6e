//! The test harness for the state machine: it plays the actor, completing the state's
//! actions by hand with a chosen `now`, and a fake loader's sizes and failures.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::{Action, State};
use crate::{
    AcquireOptions, CacheConfig, CacheError, DeviceId, Lease, LoadOptions, ModelSpec, ModelState,
    UnloadOptions,
};

pub(super) type Reply<T> = oneshot::Receiver<Result<T, CacheError>>;

/// The state plus a fake loader: estimates, actual sizes and failures by model id.
pub(super) struct Harness {
    pub(super) state: State<String>,
    pub(super) now: Instant,
    pub(super) estimates: HashMap<String, u64>,
    pub(super) actuals: HashMap<String, u64>,
    pub(super) failing: HashSet<String>,
    /// Actions taken but not completed yet.
    pub(super) pending: Vec<Action<String>>,
    /// "estimate a", "load a", "unload a", in order.
    pub(super) log: Vec<String>,
}

pub(super) fn spec(id: &str) -> ModelSpec {
    ModelSpec::new(id, DeviceId::Cpu)
}

impl Harness {
    pub(super) fn new(specs: Vec<ModelSpec>, config: CacheConfig) -> Self {
        Harness {
            state: State::new(specs, config, Arc::new(Notify::new())),
            now: Instant::now(),
            estimates: HashMap::new(),
            actuals: HashMap::new(),
            failing: HashSet::new(),
            pending: Vec::new(),
            log: Vec::new(),
        }
    }

    /// Models of `bytes` each (estimate and actual) on a CPU budget of `budget`.
    pub(super) fn sized(models: &[(&str, u64)], budget: u64, max_loaded: usize) -> Self {
        let config = CacheConfig {
            budgets: HashMap::from([(DeviceId::Cpu, budget)]),
            max_loaded_per_device: max_loaded,
            ..CacheConfig::default()
        };
        let mut h = Harness::new(models.iter().map(|(id, _)| spec(id)).collect(), config);
        for (id, bytes) in models {
            h.estimates.insert((*id).to_owned(), *bytes);
            h.actuals.insert((*id).to_owned(), *bytes);
        }
        h
    }

    pub(super) fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    pub(super) fn acquire(&mut self, id: &str) -> Reply<Lease<String>> {
        self.acquire_with(id, AcquireOptions::default())
    }

    pub(super) fn acquire_with(&mut self, id: &str, opts: AcquireOptions) -> Reply<Lease<String>> {
        let (tx, rx) = oneshot::channel();
        self.state.acquire(id, opts, tx, self.now);
        self.take();
        rx
    }

    pub(super) fn unload(&mut self, id: &str, force: bool, timeout: Duration) -> Reply<()> {
        let (tx, rx) = oneshot::channel();
        self.state
            .unload(id, UnloadOptions { force, timeout }, tx, self.now);
        self.take();
        rx
    }

    pub(super) fn load(&mut self, id: &str, opts: LoadOptions) -> Reply<crate::ModelStatus> {
        let (tx, rx) = oneshot::channel();
        self.state.load(id, opts, tx, self.now);
        self.take();
        rx
    }

    /// Moves the state's new actions to `pending`, logging them.
    pub(super) fn take(&mut self) {
        for action in self.state.take_actions() {
            self.log.push(label(&action));
            self.pending.push(action);
        }
    }

    /// Completes every pending action (and those they cause) until none is left.
    pub(super) fn settle(&mut self) {
        while !self.pending.is_empty() {
            self.complete_one(0);
        }
    }

    /// Completes the pending action labelled `what` ("load a").
    pub(super) fn complete(&mut self, what: &str) {
        let index = self.pending.iter().position(|a| label(a) == what);
        let index = index.unwrap_or_else(|| panic!("{what} is not pending"));
        self.complete_one(index);
    }

    /// Completes the pending action at `index`.
    pub(super) fn complete_one(&mut self, index: usize) {
        let now = self.now;
        match self.pending.remove(index) {
            Action::Estimate { spec, generation } => {
                let result = self
                    .estimates
                    .get(&spec.id)
                    .copied()
                    .ok_or("no estimate".into());
                self.state.on_estimated(&spec.id, generation, result, now);
            }
            Action::Load { spec, generation } => {
                let result = if self.failing.contains(&spec.id) {
                    Err(format!("{} is broken", spec.id))
                } else {
                    Ok((
                        spec.id.clone(),
                        self.actuals.get(&spec.id).copied().unwrap_or(1),
                    ))
                };
                let elapsed = Duration::from_millis(300);
                self.state
                    .on_loaded(&spec.id, generation, result, elapsed, now);
            }
            Action::Unload {
                spec,
                generation,
                model,
            } => {
                drop(model);
                self.state.on_unloaded(&spec.id, generation, now);
            }
        }
        self.take();
    }

    /// Dropped leases: what the actor does when the notify fires.
    pub(super) fn released(&mut self) {
        self.state.on_released(self.now);
        self.take();
    }

    pub(super) fn tick(&mut self) {
        self.state.on_tick(self.now);
        self.take();
    }

    pub(super) fn state_of(&self, id: &str) -> ModelState {
        let status = self.state.status(self.now);
        status
            .into_iter()
            .find(|s| s.id == id)
            .map_or(ModelState::Unloaded, |s| s.state)
    }

    /// A Ready model with no lease held.
    pub(super) fn ready_idle(&mut self, id: &str) {
        let rx = self.acquire(id);
        self.settle();
        drop(got(rx));
        self.released();
        assert_eq!(self.state_of(id), ModelState::Ready);
    }
}

fn label(action: &Action<String>) -> String {
    match action {
        Action::Estimate { spec, .. } => format!("estimate {}", spec.id),
        Action::Load { spec, .. } => format!("load {}", spec.id),
        Action::Unload { spec, .. } => format!("unload {}", spec.id),
    }
}

/// The reply a receiver holds now.
pub(super) fn got<T>(mut rx: Reply<T>) -> Result<T, CacheError> {
    rx.try_recv()
        .unwrap_or_else(|e| panic!("no reply yet: {e}"))
}

pub(super) fn lease(rx: Reply<Lease<String>>) -> Lease<String> {
    got(rx).unwrap_or_else(|e| panic!("acquire failed: {e}"))
}
