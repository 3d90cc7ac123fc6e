//! What a source is doing, for the store's status, the admin API and the progress bar.

use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::watch;

use super::checkpoint::Checkpoint;

/// A source's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Never synced, or the last sync finished.
    Idle,
    Running,
    /// The database (or store) stopped answering; the sync retries and resumes from its
    /// checkpoint. `cause` says why.
    Paused,
    /// The source cannot sync as configured; `cause` holds the database's message.
    Failed,
}

/// A source's status and counters (of the current or last sync).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceStatus {
    pub name: String,
    pub vector_store: String,
    pub state: SyncState,
    pub cause: Option<String>,
    /// Syncs finished since start.
    pub completed_syncs: u64,
    pub rows_read: u64,
    pub upserted: u64,
    pub unchanged: u64,
    pub deleted: u64,
    /// `(updated_at in µs, id)` of the last row read.
    pub checkpoint: Option<(i64, String)>,
    /// Rows read since the source was first synced (from the checkpoint).
    pub rows_total: u64,
}

/// The live status of one source; readers watch it.
#[derive(Debug)]
pub struct Progress {
    status: Mutex<SourceStatus>,
    tx: watch::Sender<SourceStatus>,
}

impl Progress {
    pub fn new(name: &str, vector_store: &str) -> Self {
        let status = SourceStatus {
            name: name.to_owned(),
            vector_store: vector_store.to_owned(),
            state: SyncState::Idle,
            cause: None,
            completed_syncs: 0,
            rows_read: 0,
            upserted: 0,
            unchanged: 0,
            deleted: 0,
            checkpoint: None,
            rows_total: 0,
        };
        let (tx, _) = watch::channel(status.clone());
        Self {
            status: Mutex::new(status),
            tx,
        }
    }

    fn edit(&self, f: impl FnOnce(&mut SourceStatus)) {
        let snapshot = {
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut s);
            s.clone()
        };
        self.tx.send_replace(snapshot);
    }

    pub fn get(&self) -> SourceStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<SourceStatus> {
        self.tx.subscribe()
    }

    pub(crate) fn start(&self) {
        self.edit(|s| {
            s.state = SyncState::Running;
            s.cause = None;
            s.rows_read = 0;
            s.upserted = 0;
            s.unchanged = 0;
            s.deleted = 0;
        });
    }

    pub(crate) fn resume(&self) {
        self.edit(|s| {
            s.state = SyncState::Running;
            s.cause = None;
        });
    }

    pub(crate) fn pause(&self, cause: String) {
        self.edit(|s| {
            s.state = SyncState::Paused;
            s.cause = Some(cause);
        });
    }

    pub(crate) fn fail(&self, cause: String) {
        self.edit(|s| {
            s.state = SyncState::Failed;
            s.cause = Some(cause);
        });
    }

    pub(crate) fn done(&self) {
        self.edit(|s| {
            s.state = SyncState::Idle;
            s.cause = None;
            s.completed_syncs += 1;
        });
    }

    pub(crate) fn read(&self, n: u64) {
        self.edit(|s| s.rows_read += n);
    }

    pub(crate) fn upserted(&self, n: u64) {
        self.edit(|s| s.upserted += n);
    }

    pub(crate) fn unchanged(&self, n: u64) {
        self.edit(|s| s.unchanged += n);
    }

    pub(crate) fn deleted(&self, n: u64) {
        self.edit(|s| s.deleted += n);
    }

    pub(crate) fn checkpoint(&self, c: Checkpoint) {
        self.edit(|s| {
            s.checkpoint = Some((c.updated_at_us, c.id));
            s.rows_total = c.rows_total;
        });
    }
}
