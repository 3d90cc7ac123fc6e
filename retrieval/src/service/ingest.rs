//! Background ingestion: a bounded queue of store files and `ingest_concurrency` workers.
//!
//! A store file is a job while its record says `in_progress`. `submit` queues it without
//! waiting; when the queue is full the record alone keeps it, and the sweeper (at start, then
//! every `sweep_secs`) queues pending records that are not queued or running — which is also
//! how a restart resumes them. A run extracts and chunks the file off the async workers,
//! embeds the chunks in batches, upserts them, and records `completed` or `failed` with
//! `last_error` (an unreadable, empty or unsupported file fails alone; other files go on).
//! A run holds one of `ingest_concurrency` places and its file's size from the
//! `ingest_max_bytes` budget while it reads, embeds and writes, and gives both back before it
//! waits for the flush that makes its chunks durable.
//! With shared records (replicas on one database) a run first claims its job for a lease, so
//! one replica runs it; the others' sweepers skip it until the lease ends.
//! The outcome is recorded only if the record's revision is the one the run started from;
//! otherwise (attributes updated, re-added) the run starts over, and a record deleted
//! meanwhile has its chunks removed.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::RetrievalService;
use super::embed::TextKind;
use crate::error::{Result, RetrievalError};
use crate::ingest::{ChunkingStrategy, FileKind, IngestError, Tokenize, chunk_text};
use crate::ingest::{detect_language, extract_text, normalize_text};
use crate::records::{FileStatus, LastError, StoreFileRecord};
use crate::types::{AttributeValue, Chunk, ChunkPayload, chunk_point_id};

/// (store id, file id).
pub(crate) type JobKey = (String, String);

/// How long a claimed job stays another replica's before it may take it over (the holder
/// died). Longer than any one run: the busy waits below alone come to one minute.
const JOB_LEASE: Duration = Duration::from_secs(15 * 60);

/// Waits between tries when the embedding engine is busy, and how many tries.
const BUSY_WAIT: Duration = Duration::from_millis(250);
const BUSY_TRIES: u32 = 240;

/// How a run ended.
enum Outcome {
    Completed {
        usage_bytes: u64,
        chunks: u64,
    },
    Failed(LastError),
    /// The record changed or went away during the run.
    Superseded,
}

fn failed(code: &str, message: impl Into<String>) -> Outcome {
    Outcome::Failed(LastError {
        code: code.into(),
        message: message.into(),
    })
}

fn ingest_failed(e: &IngestError) -> Outcome {
    failed(e.code(), e.to_string())
}

/// Precomputed token offsets, handed to the chunker.
struct Offsets(Vec<Range<usize>>);

impl Tokenize for Offsets {
    fn token_offsets(&self, _text: &str) -> std::result::Result<Vec<Range<usize>>, String> {
        Ok(self.0.clone())
    }
}

/// What runs may hold at once: `ingest_concurrency` places, and `ingest_max_bytes` of file
/// bytes in KiB (a run holds its file's size, or the whole budget for a larger file).
#[derive(Clone)]
struct Limits {
    places: Arc<Semaphore>,
    kib: Arc<Semaphore>,
    budget_kib: u32,
}

impl Limits {
    fn new(concurrency: usize, max_bytes: u64) -> Self {
        let budget_kib = u32::try_from(max_bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, MAX_BUDGET_KIB);
        Self {
            places: Arc::new(Semaphore::new(concurrency.max(1))),
            kib: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
        }
    }
}

/// The largest byte budget, in KiB (1 TiB; more than any file `[files] max_bytes` allows).
const MAX_BUDGET_KIB: u32 = 1 << 30;

/// A run's share of the [`Limits`]: held while the run reads, embeds and writes (the work that
/// takes the CPU and memory), and given back before it waits for the flush that makes its
/// chunks durable, so that waiting on the disk does not keep the next file from the CPU.
struct Slot {
    limits: Limits,
    place: Option<OwnedSemaphorePermit>,
    bytes: Option<OwnedSemaphorePermit>,
}

impl Slot {
    /// Takes a place unless this run holds one; `false` if the workers are stopping.
    async fn hold(&mut self) -> bool {
        if self.place.is_none() {
            match Arc::clone(&self.limits.places).acquire_owned().await {
                Ok(permit) => self.place = Some(permit),
                Err(_) => return false,
            }
        }
        true
    }

    /// Takes a file's size from the byte budget (the whole budget for a larger file), after
    /// the place: a run waits here while larger files fill the budget.
    async fn hold_bytes(&mut self, size: u64) -> bool {
        if self.bytes.is_none() {
            let kib = u32::try_from(size.div_ceil(1024))
                .unwrap_or(u32::MAX)
                .clamp(1, self.limits.budget_kib);
            match Arc::clone(&self.limits.kib).acquire_many_owned(kib).await {
                Ok(permit) => self.bytes = Some(permit),
                Err(_) => return false,
            }
        }
        true
    }

    fn give_back(&mut self) {
        self.bytes = None;
        self.place = None;
    }
}

pub(super) fn spawn_workers(service: &RetrievalService, mut rx: mpsc::Receiver<JobKey>) {
    let options = &service.0.options;
    let limits = Limits::new(options.ingest_concurrency, options.ingest_max_bytes);
    let weak = Arc::downgrade(&service.0);
    tokio::spawn(async move {
        while let Some(key) = rx.recv().await {
            let Ok(place) = Arc::clone(&limits.places).acquire_owned().await else {
                return;
            };
            let Some(inner) = weak.upgrade() else {
                return;
            };
            let service = RetrievalService(inner);
            let mut slot = Slot {
                limits: limits.clone(),
                place: Some(place),
                bytes: None,
            };
            tokio::spawn(async move {
                service.run_job(&key, &mut slot).await;
                service
                    .0
                    .active
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&key);
            });
        }
    });
    let weak = Arc::downgrade(&service.0);
    let every = Duration::from_secs(service.0.options.sweep_secs.max(1));
    tokio::spawn(async move {
        loop {
            let Some(inner) = weak.upgrade() else {
                return;
            };
            let service = RetrievalService(inner);
            match service.0.records.pending_store_files().await {
                Ok(pending) => pending.iter().for_each(|f| service.submit(f)),
                Err(e) => tracing::warn!(error = %e, "cannot list pending vector store files"),
            }
            drop(service);
            tokio::time::sleep(every).await;
        }
    });
}

fn attributes(map: &serde_json::Map<String, Value>) -> BTreeMap<String, AttributeValue> {
    map.iter()
        .filter_map(|(k, v)| AttributeValue::from_json(v).map(|v| (k.clone(), v)))
        .collect()
}

impl RetrievalService {
    /// Queues a store file's ingestion unless it is queued or running already; never waits.
    pub(crate) fn submit(&self, file: &StoreFileRecord) {
        let key = (file.store_id.clone(), file.file_id.clone());
        let mut active = self.0.active.lock().unwrap_or_else(PoisonError::into_inner);
        if active.contains(&key) {
            return;
        }
        match self.0.jobs.try_send(key.clone()) {
            Ok(()) => {
                active.insert(key);
            }
            // The record keeps the job; the sweeper queues it when there is room.
            Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("the ingestion queue is closed");
            }
        }
    }

    /// Queues a store file's ingestion unless it is queued or running already, waiting for
    /// room in the queue.
    pub(crate) async fn queue(&self, file: &StoreFileRecord) {
        let key = (file.store_id.clone(), file.file_id.clone());
        let Ok(place) = self.0.jobs.reserve().await else {
            tracing::error!("the ingestion queue is closed");
            return;
        };
        let mut active = self.0.active.lock().unwrap_or_else(PoisonError::into_inner);
        if active.insert(key.clone()) {
            place.send(key);
        }
    }

    /// Runs a job until its outcome is recorded for the current revision, holding its claim
    /// (shared records: another replica may be running it) while it runs.
    async fn run_job(&self, key: &JobKey, slot: &mut Slot) {
        self.run_claimed(key, slot).await;
        slot.give_back();
        let (store_id, file_id) = key;
        if let Err(e) = self
            .0
            .records
            .release_job(store_id, file_id, &self.0.holder)
            .await
        {
            tracing::warn!(store_id, file_id, error = %e, "cannot release an ingestion claim");
        }
    }

    async fn run_claimed(&self, (store_id, file_id): &JobKey, slot: &mut Slot) {
        loop {
            if !slot.hold().await {
                return;
            }
            let record = match self.0.records.get_store_file(store_id, file_id).await {
                Ok(Some(r)) if r.status == FileStatus::InProgress => r,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(store_id, file_id, error = %e, "cannot read a store file");
                    return;
                }
            };
            match self
                .0
                .records
                .claim_job(&record, &self.0.holder, JOB_LEASE)
                .await
            {
                Ok(true) => {}
                // Another replica runs it; the sweeper looks again after its lease.
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(store_id, file_id, error = %e, "cannot claim an ingestion");
                    return;
                }
            }
            self.0
                .runs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let outcome = match self.ingest(&record, slot).await {
                Ok(outcome) => outcome,
                Err(e) => failed("server_error", e.to_string()),
            };
            match self.record_outcome(&record, outcome).await {
                Ok(true) => return,
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(store_id, file_id, error = %e, "cannot record an ingestion");
                    return;
                }
            }
        }
    }

    /// Records the outcome if `started` is still the current revision; `false` to run again.
    async fn record_outcome(&self, started: &StoreFileRecord, outcome: Outcome) -> Result<bool> {
        let (store_id, file_id) = (&started.store_id, &started.file_id);
        let _edit = self.0.edit.lock().await;
        let current = self.0.records.get_store_file(store_id, file_id).await?;
        let Some(mut current) = current else {
            drop(_edit);
            // Deleted during the run: remove whatever the run stored.
            match self.0.store.delete_file(store_id, file_id).await {
                Ok(_) | Err(RetrievalError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            self.0.caches.bump(store_id);
            return Ok(true);
        };
        if current.revision != started.revision {
            if current.status == FileStatus::Cancelled {
                drop(_edit);
                self.0.store.delete_file(store_id, file_id).await?;
                self.0.caches.bump(store_id);
                return Ok(true);
            }
            return Ok(current.status != FileStatus::InProgress);
        }
        match outcome {
            Outcome::Superseded => return Ok(false),
            Outcome::Completed {
                usage_bytes,
                chunks,
            } => {
                current.status = FileStatus::Completed;
                current.usage_bytes = usage_bytes;
                current.chunks = chunks;
                current.last_error = None;
            }
            Outcome::Failed(error) => {
                tracing::info!(store_id, file_id, code = %error.code, "{}", error.message);
                current.status = FileStatus::Failed;
                current.usage_bytes = 0;
                current.chunks = 0;
                current.last_error = Some(error);
                match self.0.store.delete_file(store_id, file_id).await {
                    Ok(_) | Err(RetrievalError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.0.records.put_store_file(current).await?;
        self.0.caches.bump(store_id);
        Ok(true)
    }

    /// Whether `started` is still the current revision in progress.
    async fn still_current(&self, started: &StoreFileRecord) -> Result<bool> {
        Ok(self
            .0
            .records
            .get_store_file(&started.store_id, &started.file_id)
            .await?
            .is_some_and(|r| r.revision == started.revision && r.status == FileStatus::InProgress))
    }

    /// One run: extract, chunk, embed, upsert, then (with `slot` given back) flush.
    async fn ingest(&self, job: &StoreFileRecord, slot: &mut Slot) -> Result<Outcome> {
        let store_id = &job.store_id;
        let Some(file) = self.0.records.get_file(&job.file_id).await? else {
            return Ok(failed(
                "invalid_file",
                format!("the file `{}` was deleted", job.file_id),
            ));
        };
        if !slot.hold_bytes(file.bytes).await {
            return Ok(Outcome::Superseded);
        }
        let store = self.store_record(store_id).await?;
        let strategy = match ChunkingStrategy::from_json(&job.chunking_strategy) {
            Ok(s) => s,
            Err(e) => return Ok(ingest_failed(&e)),
        };
        let bytes = match self.0.blobs.read(&file.id).await {
            Ok(bytes) => bytes,
            Err(e) => {
                return Ok(failed(
                    "server_error",
                    format!("cannot read the file's bytes: {e}"),
                ));
            }
        };
        let read = {
            let file = file.clone();
            tokio::task::spawn_blocking(move || -> std::result::Result<String, Outcome> {
                if bytes.is_empty() {
                    return Err(failed("invalid_file", "The file is empty (0 bytes)."));
                }
                let kind = FileKind::detect(&file.filename, file.content_type.as_deref())
                    .map_err(|e| ingest_failed(&e))?;
                let text = extract_text(kind, &bytes).map_err(|e| ingest_failed(&e))?;
                let text = normalize_text(&text);
                if text.trim().is_empty() {
                    return Err(failed("invalid_file", "The file contains no text."));
                }
                Ok(text)
            })
            .await
            .map_err(|e| RetrievalError::Unavailable(format!("extraction task failed: {e}")))?
        };
        let text: Arc<str> = match read {
            Ok(text) => text.into(),
            Err(outcome) => return Ok(outcome),
        };
        let info = self.0.embed.describe(&store.model).await?;
        let offsets = self
            .0
            .embed
            .token_offsets(&store.model, Arc::clone(&text))
            .await?;
        let chunks = {
            let text = Arc::clone(&text);
            tokio::task::spawn_blocking(move || {
                chunk_text(&text, strategy, info.limits, &Offsets(offsets))
            })
            .await
            .map_err(|e| RetrievalError::Unavailable(format!("chunking task failed: {e}")))?
        };
        let chunks = match chunks {
            Ok(c) if c.is_empty() => return Ok(failed("invalid_file", "The file has no text.")),
            Ok(c) => c,
            Err(e) => return Ok(ingest_failed(&e)),
        };
        // Chunks of an earlier run of this file (re-added, re-attributed) go first.
        self.0.store.delete_file(store_id, &file.id).await?;
        let attrs = attributes(&job.attributes);
        let mut usage_bytes = 0u64;
        for batch in chunks.chunks(self.0.options.embed_batch.max(1)) {
            if !self.still_current(job).await? {
                return Ok(Outcome::Superseded);
            }
            let texts: Vec<String> = batch.iter().map(|c| c.text.clone()).collect();
            let vectors = self.embed_patiently(&store.model, texts).await?;
            let points = batch
                .iter()
                .zip(vectors)
                .map(|(c, vector)| Chunk {
                    id: chunk_point_id(&file.id, c.index),
                    vector,
                    payload: ChunkPayload {
                        file_id: file.id.clone(),
                        filename: file.filename.clone(),
                        chunk_index: c.index,
                        text: c.text.clone(),
                        attributes: attrs.clone(),
                        lang: detect_language(&c.text),
                    },
                })
                .collect();
            match self.0.store.upsert(store_id, points).await {
                Ok(()) => {}
                Err(e @ RetrievalError::AttributeType { .. }) => {
                    return Ok(failed("invalid_file", e.to_string()));
                }
                Err(e) => return Err(e),
            }
            usage_bytes += batch.iter().map(|c| c.text.len() as u64).sum::<u64>();
            self.0.caches.bump(store_id);
        }
        let ticket = self.0.flushes.written();
        slot.give_back();
        let vectors = &self.0.store;
        self.0
            .flushes
            .flush(store_id, ticket, || vectors.flush(store_id))
            .await?;
        self.0.optimizer.schedule(store_id);
        Ok(Outcome::Completed {
            usage_bytes,
            chunks: chunks.len() as u64,
        })
    }

    /// Embeds passages, waiting while the engine's queue is full.
    async fn embed_patiently(&self, model: &str, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        let mut tries = 0;
        loop {
            match self
                .0
                .embed
                .embed(model, texts.clone(), TextKind::Passage)
                .await
            {
                Err(RetrievalError::Unavailable(why)) if tries < BUSY_TRIES => {
                    tracing::debug!(model, %why, "embedding engine busy; waiting");
                    tries += 1;
                    tokio::time::sleep(BUSY_WAIT).await;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(limits: &Limits) -> Slot {
        Slot {
            limits: limits.clone(),
            place: None,
            bytes: None,
        }
    }

    /// Whether `wait` is still waiting after a moment.
    async fn waits<F: Future>(wait: F) -> bool {
        tokio::time::timeout(Duration::from_millis(50), wait)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn places_bound_the_runs() {
        let limits = Limits::new(2, 1 << 20);
        let (mut a, mut b, mut c) = (slot(&limits), slot(&limits), slot(&limits));
        assert!(a.hold().await && b.hold().await);
        assert!(waits(c.hold()).await, "a third run waits for a place");
        a.give_back();
        assert!(c.hold().await);
        assert!(b.hold().await, "a run that holds a place keeps it");
    }

    #[tokio::test]
    async fn a_file_over_the_byte_budget_runs_alone_and_small_ones_share_it() {
        let limits = Limits::new(64, 1 << 20);
        let mut large = slot(&limits);
        assert!(large.hold().await && large.hold_bytes(5 << 20).await);
        let mut small = slot(&limits);
        assert!(small.hold().await);
        assert!(
            waits(small.hold_bytes(1)).await,
            "the large file holds it all"
        );
        large.give_back();
        assert!(small.hold_bytes(1).await);
        // 1 KiB of the 1,024 is taken; a 1,023 KiB file fits beside it, then nothing more.
        let mut half = slot(&limits);
        assert!(half.hold_bytes(1023 << 10).await);
        let mut more = slot(&limits);
        assert!(waits(more.hold_bytes(1)).await, "the budget is spent");
        small.give_back();
        assert!(more.hold_bytes(1).await);
    }
}
