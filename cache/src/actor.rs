//! The actor: a tokio task that owns the [`State`] and is its only mutator. It takes
//! [`Command`]s from the handles, runs the state's blocking work on `spawn_blocking` threads,
//! wakes on dropped leases (a shared `Notify`) and on the earliest keep-alive expiry or unload
//! timeout (`sleep_until`). It stops when every handle is dropped; the models it still holds are
//! then dropped on a blocking thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::config::COMMAND_CAPACITY;
use crate::state::{AcquireReply, Action, LoadReply, State, UnloadReply};
use crate::{
    AcquireOptions, CacheConfig, CacheError, CacheMetrics, DeviceMemory, LoadOptions, Loader,
    ModelSpec, ModelStatus, UnloadOptions,
};

/// A request from a handle; replies go through the `oneshot` it carries.
pub(crate) enum Command<M> {
    Acquire {
        id: String,
        opts: AcquireOptions,
        reply: AcquireReply<M>,
    },
    Load {
        id: String,
        opts: LoadOptions,
        reply: LoadReply,
    },
    Unload {
        id: String,
        opts: UnloadOptions,
        reply: UnloadReply,
    },
    Pin {
        id: String,
        pinned: bool,
        reply: oneshot::Sender<Result<(), CacheError>>,
    },
    Preload {
        ids: Vec<String>,
    },
    IsReady {
        id: String,
        reply: oneshot::Sender<bool>,
    },
    Status {
        reply: oneshot::Sender<Vec<ModelStatus>>,
    },
    Memory {
        reply: oneshot::Sender<Vec<DeviceMemory>>,
    },
    Metrics {
        reply: oneshot::Sender<CacheMetrics>,
    },
}

/// Blocking work that finished.
enum Done<M> {
    Estimated {
        id: String,
        generation: u64,
        result: Result<u64, String>,
    },
    Loaded {
        id: String,
        generation: u64,
        result: Result<(M, u64), String>,
        elapsed: std::time::Duration,
    },
    Unloaded {
        id: String,
        generation: u64,
    },
}

/// Spawns the actor on the current tokio runtime and returns its command sender.
pub(crate) fn spawn<L: Loader>(
    loader: Arc<L>,
    specs: Vec<ModelSpec>,
    config: CacheConfig,
) -> mpsc::Sender<Command<L::Model>> {
    let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
    let notify = Arc::new(Notify::new());
    let state = State::new(specs, config, Arc::clone(&notify));
    tokio::spawn(run(loader, state, rx, notify));
    tx
}

async fn run<L: Loader>(
    loader: Arc<L>,
    mut state: State<L::Model>,
    mut commands: mpsc::Receiver<Command<L::Model>>,
    notify: Arc<Notify>,
) {
    // Unbounded, yet bounded in practice: each model has at most one piece of work in flight.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    loop {
        for action in state.take_actions() {
            dispatch(&loader, action, &done_tx);
        }
        let deadline = state.next_deadline();
        let timer = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => handle(&mut state, command),
                None => break,
            },
            Some(done) = done_rx.recv() => complete(&mut state, done),
            () = notify.notified() => state.on_released(Instant::now()),
            () = timer => state.on_tick(Instant::now()),
        }
    }
    tokio::task::spawn_blocking(move || drop(state));
}

fn handle<M>(state: &mut State<M>, command: Command<M>) {
    let now = Instant::now();
    match command {
        Command::Acquire { id, opts, reply } => state.acquire(&id, opts, reply, now),
        Command::Load { id, opts, reply } => state.load(&id, opts, reply, now),
        Command::Unload { id, opts, reply } => state.unload(&id, opts, reply, now),
        Command::Pin { id, pinned, reply } => {
            let _ = reply.send(state.set_pinned(&id, pinned, now));
        }
        Command::Preload { ids } => state.preload(&ids, now),
        Command::IsReady { id, reply } => {
            let _ = reply.send(state.is_ready(&id));
        }
        Command::Status { reply } => {
            let _ = reply.send(state.status(now));
        }
        Command::Memory { reply } => {
            let _ = reply.send(state.memory());
        }
        Command::Metrics { reply } => {
            let _ = reply.send(state.metrics());
        }
    }
}

fn complete<M>(state: &mut State<M>, done: Done<M>) {
    let now = Instant::now();
    match done {
        Done::Estimated {
            id,
            generation,
            result,
        } => {
            state.on_estimated(&id, generation, result, now);
        }
        Done::Loaded {
            id,
            generation,
            result,
            elapsed,
        } => {
            state.on_loaded(&id, generation, result, elapsed, now);
        }
        Done::Unloaded { id, generation } => state.on_unloaded(&id, generation, now),
    }
}

/// Runs one piece of blocking work and reports it back, a panic included.
fn dispatch<L: Loader>(
    loader: &Arc<L>,
    action: Action<L::Model>,
    done: &mpsc::UnboundedSender<Done<L::Model>>,
) {
    let (loader, done) = (Arc::clone(loader), done.clone());
    tokio::task::spawn_blocking(move || {
        let report = match action {
            Action::Estimate { spec, generation } => {
                let result = guarded(|| loader.estimate(&spec));
                Done::Estimated {
                    id: spec.id,
                    generation,
                    result,
                }
            }
            Action::Load { spec, generation } => {
                let started = std::time::Instant::now();
                let result = guarded(|| loader.load(&spec));
                let elapsed = started.elapsed();
                Done::Loaded {
                    id: spec.id,
                    generation,
                    result,
                    elapsed,
                }
            }
            Action::Unload {
                spec,
                generation,
                model,
            } => {
                // The state hands over a model no lease refers to, so this unwrap succeeds;
                // otherwise the remaining references free it when they drop.
                if let Ok(model) = Arc::try_unwrap(model) {
                    let _ = guarded(|| {
                        loader.unload(&spec, model);
                        Ok(())
                    });
                }
                Done::Unloaded {
                    id: spec.id,
                    generation,
                }
            }
        };
        // Fails only when the actor is gone; the report (a loaded model included) drops here.
        let _ = done.send(report);
    });
}

fn guarded<T>(work: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(format!("the loader panicked: {message}"))
    })
}
