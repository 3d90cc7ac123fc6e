//! The embedding engine: one thread per embedding model that batches concurrent requests by a
//! token budget.
//!
//! Requests queue on a bounded channel. The thread takes every request that fits the budget,
//! sorts all their inputs by length (less padding), runs them in batches whose padded size stays
//! within the budget, and answers each request with its vectors in input order.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};

use tokio::sync::oneshot;

use crate::{EngineError, SubmitError};

/// A model that turns token id sequences into vectors.
pub trait Embedder: Send + Sync + 'static {
    /// One vector per input, in order. Inputs are already tokenized and truncated.
    fn embed(&self, batch: &[Vec<u32>]) -> nfai_models::Result<Vec<Vec<f32>>>;
}

/// Every embedding model of `nfai-models` (all-MiniLM-L6-v2, multilingual-e5-small) drives the
/// engine through its [`nfai_models::TextEmbedder`] handle, as [`nfai_models::load_embedder`]
/// returns it. Text is tokenized before it is submitted, with the input kind (e5's
/// `query: ` / `passage: ` prefix) chosen there.
impl Embedder for Arc<dyn nfai_models::TextEmbedder> {
    fn embed(&self, batch: &[Vec<u32>]) -> nfai_models::Result<Vec<Vec<f32>>> {
        self.as_ref().embed(batch)
    }
}

/// Limits of one embedding engine.
#[derive(Debug, Clone)]
pub struct EmbeddingConfig {
    /// Padded tokens (longest input × inputs) per forward pass.
    pub max_batch_tokens: usize,
    /// Inputs per forward pass.
    pub max_batch_size: usize,
    /// Requests that may wait before new ones get `QueueFull`.
    pub queue_capacity: usize,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        Self {
            max_batch_tokens: 16_384,
            max_batch_size: 64,
            queue_capacity: 256,
        }
    }
}

type Reply = Result<Vec<Vec<f32>>, EngineError>;

struct Job {
    inputs: Vec<Vec<u32>>,
    reply: oneshot::Sender<Reply>,
}

impl Job {
    fn tokens(&self) -> usize {
        self.inputs.iter().map(Vec::len).sum()
    }
}

/// Counters kept by the engine thread.
#[derive(Debug, Default)]
pub struct EmbeddingStats {
    pub batches: AtomicUsize,
    pub inputs: AtomicUsize,
    pub alive: AtomicBool,
}

/// A cheap, cloneable handle to one embedding model's thread.
#[derive(Clone)]
pub struct EmbeddingEngine {
    tx: SyncSender<Job>,
    stats: Arc<EmbeddingStats>,
    capacity: usize,
}

impl std::fmt::Debug for EmbeddingEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingEngine")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl EmbeddingEngine {
    pub fn start(
        name: &str,
        model: Arc<dyn Embedder>,
        config: EmbeddingConfig,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(config.queue_capacity.max(1));
        let stats = Arc::new(EmbeddingStats::default());
        stats.alive.store(true, Ordering::SeqCst);
        let capacity = config.queue_capacity;
        let worker = Worker {
            model,
            config,
            rx,
            stats: stats.clone(),
            carry: None,
        };
        std::thread::Builder::new()
            .name(format!("emb-{name}"))
            .spawn(move || worker.run())?;
        Ok(Self {
            tx,
            stats,
            capacity,
        })
    }

    /// Queues tokenized inputs without waiting; the receiver yields one vector per input.
    pub fn submit(&self, inputs: Vec<Vec<u32>>) -> Result<oneshot::Receiver<Reply>, SubmitError> {
        if inputs.is_empty() || inputs.iter().any(Vec::is_empty) {
            return Err(SubmitError::Invalid("empty input".into()));
        }
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { inputs, reply }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(SubmitError::QueueFull {
                capacity: self.capacity,
            }),
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::Stopped),
        }
    }

    pub fn stats(&self) -> &EmbeddingStats {
        &self.stats
    }

    pub fn is_alive(&self) -> bool {
        self.stats.alive.load(Ordering::SeqCst)
    }
}

struct Worker {
    model: Arc<dyn Embedder>,
    config: EmbeddingConfig,
    rx: Receiver<Job>,
    stats: Arc<EmbeddingStats>,
    carry: Option<Job>,
}

impl Worker {
    fn run(mut self) {
        while let Some(jobs) = self.collect() {
            let jobs: Vec<Job> = jobs.into_iter().filter(|j| !j.reply.is_closed()).collect();
            if jobs.is_empty() {
                continue;
            }
            match catch_unwind(AssertUnwindSafe(|| self.run_jobs(&jobs))) {
                Ok(Ok(mut results)) => {
                    for (job, vectors) in jobs.into_iter().zip(results.drain(..)) {
                        let _ = job.reply.send(Ok(vectors));
                    }
                }
                Ok(Err(e)) if jobs.len() == 1 => {
                    tracing::warn!(error = %e, "embedding request failed");
                    for job in jobs {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                }
                Ok(Err(_)) => {
                    // One request's input broke the shared batch: run each alone, so only the
                    // request at fault gets the error.
                    for job in jobs {
                        let result = catch_unwind(AssertUnwindSafe(|| {
                            self.run_jobs(std::slice::from_ref(&job))
                        }));
                        let reply = match result {
                            Ok(Ok(mut r)) => Ok(r.pop().unwrap_or_default()),
                            Ok(Err(e)) => Err(e),
                            Err(_) => Err(EngineError::Compute("the model panicked".into())),
                        };
                        let _ = job.reply.send(reply);
                    }
                }
                Err(_) => {
                    tracing::error!("embedding model panicked; stopping the engine");
                    for job in jobs {
                        let _ = job.reply.send(Err(EngineError::Stopped));
                    }
                    break;
                }
            }
        }
        self.stats.alive.store(false, Ordering::SeqCst);
        drop(self);
        crate::release_free_memory();
    }

    /// Blocks for the first job, then takes more while they fit the token budget.
    fn collect(&mut self) -> Option<Vec<Job>> {
        let first = match self.carry.take() {
            Some(j) => j,
            None => self.rx.recv().ok()?,
        };
        let mut tokens = first.tokens();
        let mut jobs = vec![first];
        while tokens < self.config.max_batch_tokens {
            match self.rx.try_recv() {
                Ok(j) if tokens + j.tokens() > self.config.max_batch_tokens => {
                    self.carry = Some(j);
                    break;
                }
                Ok(j) => {
                    tokens += j.tokens();
                    jobs.push(j);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        Some(jobs)
    }

    /// Embeds every input of `jobs`, sorted by length and cut into budget-sized batches.
    fn run_jobs(&self, jobs: &[Job]) -> Result<Vec<Vec<Vec<f32>>>, EngineError> {
        let mut order: Vec<(usize, usize)> = jobs
            .iter()
            .enumerate()
            .flat_map(|(j, job)| (0..job.inputs.len()).map(move |i| (j, i)))
            .collect();
        order.sort_by_key(|&(j, i)| jobs[j].inputs[i].len());
        let mut out: Vec<Vec<Vec<f32>>> = jobs
            .iter()
            .map(|j| vec![Vec::new(); j.inputs.len()])
            .collect();
        for chunk in plan_batches(&order, |&(j, i)| jobs[j].inputs[i].len(), &self.config) {
            let batch: Vec<Vec<u32>> = chunk
                .iter()
                .map(|&(j, i)| jobs[j].inputs[i].clone())
                .collect();
            let vectors = self.model.embed(&batch)?;
            if vectors.len() != batch.len() {
                return Err(EngineError::Compute(format!(
                    "the model returned {} vectors for {} inputs",
                    vectors.len(),
                    batch.len()
                )));
            }
            for (&(j, i), v) in chunk.iter().zip(vectors) {
                out[j][i] = v;
            }
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            self.stats.inputs.fetch_add(batch.len(), Ordering::Relaxed);
        }
        Ok(out)
    }
}

/// Cuts length-sorted items into batches where longest × count stays within the token budget
/// and the count within the batch size (an item longer than the budget runs alone).
fn plan_batches<'a, T>(
    sorted: &'a [T],
    len: impl Fn(&T) -> usize,
    config: &EmbeddingConfig,
) -> Vec<&'a [T]> {
    let mut batches = Vec::new();
    let mut start = 0;
    for end in 0..sorted.len() {
        let count = end - start + 1;
        let padded = len(&sorted[end]) * count;
        if count > 1 && (padded > config.max_batch_tokens || count > config.max_batch_size) {
            batches.push(&sorted[start..end]);
            start = end;
        }
    }
    if start < sorted.len() {
        batches.push(&sorted[start..]);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic embedder: [len, sum of ids]; it fails on id 666.
    struct Toy;
    impl Embedder for Toy {
        fn embed(&self, batch: &[Vec<u32>]) -> nfai_models::Result<Vec<Vec<f32>>> {
            batch
                .iter()
                .map(|ids| {
                    if ids.contains(&666) {
                        return Err(nfai_models::ModelError::Input("bad id".into()));
                    }
                    Ok(vec![ids.len() as f32, ids.iter().sum::<u32>() as f32])
                })
                .collect()
        }
    }

    #[test]
    fn batches_respect_budget_and_size() {
        let cfg = EmbeddingConfig {
            max_batch_tokens: 10,
            max_batch_size: 3,
            queue_capacity: 1,
        };
        let items = [1usize, 2, 2, 3, 3, 5, 11];
        let b = plan_batches(&items, |x| *x, &cfg);
        assert_eq!(b, vec![&[1, 2, 2][..], &[3, 3][..], &[5][..], &[11][..]]);
    }

    #[tokio::test]
    async fn concurrent_requests_get_their_own_vectors_in_order() {
        let engine =
            EmbeddingEngine::start("toy", Arc::new(Toy), EmbeddingConfig::default()).unwrap();
        let a = engine.submit(vec![vec![1, 2, 3], vec![4]]).unwrap();
        let b = engine.submit(vec![vec![10; 7]]).unwrap();
        assert_eq!(
            a.await.unwrap().unwrap(),
            vec![vec![3.0, 6.0], vec![1.0, 4.0]]
        );
        assert_eq!(b.await.unwrap().unwrap(), vec![vec![7.0, 70.0]]);
    }

    /// multilingual-e5-small behind the engine: concurrent requests of queries and passages
    /// get the vectors the model gives each text alone. Needs the model (`nfai models fetch`).
    #[tokio::test]
    async fn e5_through_the_engine_matches_direct_embedding() {
        use nfai_models::{EmbedderFormat, InputKind, TextEmbedder};
        let path = nfai_models::default_model_dir()
            .join("multilingual-e5-small")
            .join("e5-small-q4.bin");
        assert!(
            path.exists(),
            "run `nfai models fetch` first: {}",
            path.display()
        );
        let model: Arc<dyn TextEmbedder> =
            nfai_models::load_embedder(EmbedderFormat::E5, &path, &candle_core::Device::Cpu)
                .unwrap();
        let engine = EmbeddingEngine::start(
            "e5",
            Arc::new(model.clone()) as Arc<dyn Embedder>,
            EmbeddingConfig::default(),
        )
        .unwrap();
        let query = model
            .tokenize("Khách hàng hỏi về đơn hàng số 4521", InputKind::Query)
            .unwrap();
        let passages: Vec<Vec<u32>> = [
            "Đơn hàng số 4521 đã được giao vào ngày 12 tháng 3.",
            "Hợp đồng với Minh Phát hết hạn cuối năm.",
        ]
        .iter()
        .map(|t| model.tokenize(t, InputKind::Passage).unwrap())
        .collect();
        let a = engine.submit(vec![query.clone()]).unwrap();
        let b = engine.submit(passages.clone()).unwrap();
        let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        assert_eq!(a.len(), 1);
        assert_eq!(b.len(), 2);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        for (got, ids) in a
            .iter()
            .chain(&b)
            .zip(std::iter::once(&query).chain(&passages))
        {
            let alone = model.embed(std::slice::from_ref(ids)).unwrap();
            assert!(dot(got, &alone[0]) > 0.99999);
        }
        assert!(dot(&a[0], &b[0]) > dot(&a[0], &b[1]));
    }

    #[tokio::test]
    async fn model_errors_reach_the_caller_and_the_engine_survives() {
        let engine =
            EmbeddingEngine::start("toy", Arc::new(Toy), EmbeddingConfig::default()).unwrap();
        let bad = engine.submit(vec![vec![666]]).unwrap().await.unwrap();
        assert!(matches!(bad, Err(EngineError::Input(_))));
        let good = engine.submit(vec![vec![1]]).unwrap().await.unwrap();
        assert_eq!(good.unwrap(), vec![vec![1.0, 1.0]]);
        // A bad request batched with a good one fails alone.
        let bad = engine.submit(vec![vec![666]]).unwrap();
        let good = engine.submit(vec![vec![2, 2]]).unwrap();
        assert!(bad.await.unwrap().is_err());
        assert_eq!(good.await.unwrap().unwrap(), vec![vec![2.0, 4.0]]);
        assert!(engine.submit(vec![]).is_err());
    }
}
