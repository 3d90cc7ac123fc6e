//! [`SourceRunner`]: one task per source that syncs on request and, when configured, every
//! `interval_secs`. A database that stops answering pauses the sync (the cause in its status)
//! and it retries with a growing delay, resuming from the checkpoint; a source whose query
//! fails is marked failed and the others go on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::checkpoint::CheckpointDir;
use super::config::SourceConfig;
use super::query::{SourceQuery, SourceRow};
use super::status::{Progress, SourceStatus, SyncState};
use super::sync::{SyncError, plan, read_rows, resolve_store, sync_once};
use crate::pg::PgPool;
use crate::service::RetrievalService;

/// Longest delay between retries of a paused sync.
const MAX_RETRY: Duration = Duration::from_secs(10);

struct Source {
    config: SourceConfig,
    pool: PgPool,
    progress: Progress,
    wake: Notify,
    /// The statements of fresh reads, planned on first use and again after a failure.
    plan: tokio::sync::Mutex<Option<Arc<SourceQuery>>>,
}

/// The running sources. Cheap to clone.
#[derive(Clone)]
pub struct SourceRunner {
    sources: Arc<HashMap<String, Arc<Source>>>,
    service: RetrievalService,
}

impl std::fmt::Debug for SourceRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceRunner")
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SourceRunner {
    /// Starts a task per source (needs a runtime). Each `(config, pool)` pairs a source with
    /// the pool of its database.
    pub fn start(
        sources: Vec<(SourceConfig, PgPool)>,
        service: RetrievalService,
        checkpoints: CheckpointDir,
    ) -> Self {
        let mut map = HashMap::new();
        for (config, pool) in sources {
            let source = Arc::new(Source {
                progress: Progress::new(&config.name, &config.vector_store),
                config,
                pool,
                wake: Notify::new(),
                plan: tokio::sync::Mutex::new(None),
            });
            let task = Arc::clone(&source);
            let service = service.clone();
            let checkpoints = checkpoints.clone();
            tokio::spawn(async move { run(task, service, checkpoints).await });
            map.insert(source.config.name.clone(), source);
        }
        Self {
            sources: Arc::new(map),
            service,
        }
    }

    /// Every source's status, by name.
    pub fn statuses(&self) -> Vec<SourceStatus> {
        let mut v: Vec<_> = self.sources.values().map(|s| s.progress.get()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn status(&self, name: &str) -> Option<SourceStatus> {
        self.sources.get(name).map(|s| s.progress.get())
    }

    /// Names of the sources that write to the store `store_id` (matched by id, or by the name
    /// the source gives).
    pub async fn sources_of_store(&self, store_id: &str) -> Vec<String> {
        let name = self
            .service
            .records()
            .get_store(store_id)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.name);
        let mut v: Vec<_> = self
            .sources
            .values()
            .filter(|s| {
                s.config.vector_store == store_id
                    || name.as_deref() == Some(s.config.vector_store.as_str())
            })
            .map(|s| s.config.name.clone())
            .collect();
        v.sort();
        v
    }

    /// Asks the named source to sync now; `false` if there is no such source.
    pub fn trigger(&self, name: &str) -> bool {
        match self.sources.get(name) {
            Some(s) => {
                s.wake.notify_one();
                true
            }
            None => false,
        }
    }

    /// Triggers the named source and waits until that sync ends (idle or failed); a paused
    /// sync keeps this waiting until the database is back.
    pub async fn sync_and_wait(&self, name: &str) -> Option<SourceStatus> {
        let source = self.sources.get(name)?;
        let mut rx = source.progress.subscribe();
        let before = rx.borrow_and_update().completed_syncs;
        source.wake.notify_one();
        loop {
            {
                let s = rx.borrow_and_update();
                if s.completed_syncs > before || s.state == SyncState::Failed {
                    return Some(s.clone());
                }
            }
            if rx.changed().await.is_err() {
                return Some(source.progress.get());
            }
        }
    }

    /// The source and row id of a store file written by a source (`<source>:<row id>`).
    pub fn source_of_file<'a>(&self, file_id: &'a str) -> Option<(&str, &'a str)> {
        let (source, row) = file_id.split_once(':')?;
        let (name, _) = self.sources.get_key_value(source)?;
        Some((name.as_str(), row))
    }

    /// Reads the rows of the named source with these row ids now, through its pool (rows
    /// deleted since come back marked or not at all). `None` if there is no such source.
    pub async fn read_rows(
        &self,
        name: &str,
        row_ids: &[String],
    ) -> Option<Result<Vec<SourceRow>, SyncError>> {
        let source = self.sources.get(name)?;
        Some(
            async {
                let plan = {
                    let mut cached = source.plan.lock().await;
                    match cached.as_ref() {
                        Some(p) => Arc::clone(p),
                        None => {
                            let p = Arc::new(plan(&source.config, &source.pool).await?);
                            *cached = Some(Arc::clone(&p));
                            p
                        }
                    }
                };
                let rows = read_rows(&source.config, &source.pool, &plan, row_ids).await;
                if rows.is_err() {
                    // The query or its columns may have changed: plan again next time.
                    *source.plan.lock().await = None;
                }
                rows
            }
            .await,
        )
    }

    /// Names of every source.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<_> = self.sources.keys().cloned().collect();
        v.sort();
        v
    }

    /// Watches a source's status (for a progress bar).
    pub fn watch(&self, name: &str) -> Option<tokio::sync::watch::Receiver<SourceStatus>> {
        self.sources.get(name).map(|s| s.progress.subscribe())
    }
}

async fn run(source: Arc<Source>, service: RetrievalService, checkpoints: CheckpointDir) {
    let interval = source.config.interval_secs.map(Duration::from_secs);
    loop {
        match interval {
            Some(every) => {
                let _ = tokio::time::timeout(every, source.wake.notified()).await;
            }
            None => source.wake.notified().await,
        }
        sync_with_retries(&source, &service, &checkpoints).await;
    }
}

async fn sync_with_retries(
    source: &Source,
    service: &RetrievalService,
    checkpoints: &CheckpointDir,
) {
    source.progress.start();
    let mut delay = Duration::from_millis(250);
    loop {
        let result = async {
            let store = resolve_store(service, &source.config.vector_store).await?;
            sync_once(
                &source.config,
                &source.pool,
                service,
                &store,
                checkpoints,
                &source.progress,
            )
            .await
        }
        .await;
        match result {
            Ok(()) => {
                source.progress.done();
                return;
            }
            Err(SyncError::Failed(cause)) => {
                tracing::warn!(source = %source.config.name, %cause, "source sync failed");
                source.progress.fail(cause);
                return;
            }
            Err(SyncError::Unavailable(cause)) => {
                tracing::warn!(source = %source.config.name, %cause, "source sync paused");
                source.progress.pause(cause);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY);
                source.progress.resume();
            }
        }
    }
}
