//! [`ModelCache`], the cheap, clonable handle callers use; every call is a command to the
//! actor answered through a `oneshot`. A stopped actor answers [`CacheError::Stopped`].

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::actor::{self, Command};
use crate::{
    AcquireOptions, CacheConfig, CacheError, CacheMetrics, DeviceMemory, Lease, LoadOptions,
    Loader, ModelSpec, ModelStatus, UnloadOptions,
};

/// Decides which models are resident on which device and hands out leases on them.
pub struct ModelCache<L: Loader> {
    commands: mpsc::Sender<Command<L::Model>>,
    ids: Arc<HashSet<String>>,
}

impl<L: Loader> Clone for ModelCache<L> {
    fn clone(&self) -> Self {
        ModelCache {
            commands: self.commands.clone(),
            ids: Arc::clone(&self.ids),
        }
    }
}

impl<L: Loader> ModelCache<L> {
    /// Starts the cache's actor on the current tokio runtime (panics outside one, like
    /// `tokio::spawn`). Every model starts unloaded; `preload` or the first acquire loads it.
    /// A later spec with the same id replaces an earlier one. The actor stops when the last
    /// handle is dropped.
    pub fn start(loader: Arc<L>, specs: Vec<ModelSpec>, config: CacheConfig) -> Self {
        let ids = specs.iter().map(|s| s.id.clone()).collect();
        let commands = actor::spawn(loader, specs, config);
        ModelCache {
            commands,
            ids: Arc::new(ids),
        }
    }

    /// True when `id` is one of the cache's models.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// A lease on `id`, loading it first when it is not Ready (one load however many callers
    /// wait; they all get its outcome). Dropping the returned future gives up the wait.
    pub async fn acquire(
        &self,
        id: &str,
        opts: AcquireOptions,
    ) -> Result<Lease<L::Model>, CacheError> {
        self.known(id)?;
        let id = id.to_owned();
        self.call(|reply| Command::Acquire { id, opts, reply })
            .await?
    }

    /// Loads `id` (or waits for the load in flight) and returns its status once Ready;
    /// `opts.pin` pins it, `opts.keep_alive` sets its keep-alive.
    pub async fn load(&self, id: &str, opts: LoadOptions) -> Result<ModelStatus, CacheError> {
        self.known(id)?;
        let id = id.to_owned();
        self.call(|reply| Command::Load { id, opts, reply }).await?
    }

    /// Unloads `id` and unpins it. Without `force`, waits up to `opts.timeout` for its leases
    /// to drop (else [`CacheError::Busy`], and the model stays); new acquires wait meanwhile
    /// and are served by the model if the unload times out, by a fresh load otherwise. With
    /// `force`, returns at once: the model takes no new leases and is unloaded (its memory
    /// counted free) when the last lease drops.
    pub async fn unload(&self, id: &str, opts: UnloadOptions) -> Result<(), CacheError> {
        self.known(id)?;
        let id = id.to_owned();
        self.call(|reply| Command::Unload { id, opts, reply })
            .await?
    }

    /// Pins `id`: never evicted nor expired, still counted against its device's budget.
    pub async fn pin(&self, id: &str) -> Result<(), CacheError> {
        self.set_pinned(id, true).await
    }

    /// Unpins `id`; if it is idle its keep-alive starts again now.
    pub async fn unpin(&self, id: &str) -> Result<(), CacheError> {
        self.set_pinned(id, false).await
    }

    async fn set_pinned(&self, id: &str, pinned: bool) -> Result<(), CacheError> {
        self.known(id)?;
        let id = id.to_owned();
        self.call(|reply| Command::Pin { id, pinned, reply })
            .await?
    }

    /// Starts loading the cold models among `ids` and returns without waiting for them. An
    /// unknown id fails the call before anything starts. Preloaded models never expire by
    /// keep-alive (a replica that idles stays ready), but unlike pinned ones they may still be
    /// evicted to make room, and load again on demand.
    pub async fn preload<I, S>(&self, ids: I) -> Result<(), CacheError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let ids: Vec<String> = ids.into_iter().map(Into::into).collect();
        for id in &ids {
            self.known(id)?;
        }
        let command = Command::Preload { ids };
        self.commands
            .send(command)
            .await
            .map_err(|_| CacheError::Stopped)
    }

    /// True when `id` is loaded and taking leases.
    pub async fn is_ready(&self, id: &str) -> Result<bool, CacheError> {
        let id = id.to_owned();
        self.call(|reply| Command::IsReady { id, reply }).await
    }

    /// Every model's residency and usage, sorted by id.
    pub async fn status(&self) -> Result<Vec<ModelStatus>, CacheError> {
        self.call(|reply| Command::Status { reply }).await
    }

    /// Every device's budget, charge and resident models, sorted by device.
    pub async fn memory(&self) -> Result<Vec<DeviceMemory>, CacheError> {
        self.call(|reply| Command::Memory { reply }).await
    }

    /// A snapshot of the cache's counters for the metrics endpoint.
    pub async fn metrics(&self) -> Result<CacheMetrics, CacheError> {
        self.call(|reply| Command::Metrics { reply }).await
    }

    fn known(&self, id: &str) -> Result<(), CacheError> {
        if self.ids.contains(id) {
            Ok(())
        } else {
            Err(CacheError::UnknownModel(id.to_owned()))
        }
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command<L::Model>,
    ) -> Result<T, CacheError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| CacheError::Stopped)?;
        answer.await.map_err(|_| CacheError::Stopped)
    }
}
