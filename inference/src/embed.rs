//! The embedding engine: one thread per embedding model that batches concurrent requests by a
//! token budget.
//!
//! Requests queue on a bounded channel. The thread takes them in, by tenant, and builds one
//! forward pass at a time: one input from each tenant in turn, while the padded size stays within
//! the token budget and the count within the batch size. A request's inputs may so span several
//! passes (a long ingestion batch), and another tenant's request waits for at most the pass
//! running when it arrives. Each request is answered with its vectors in input order once all
//! have been computed.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};

use tokio::sync::oneshot;

use crate::fair::{FairQueue, Tenant};
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
    /// Requests that may wait in the channel before new ones get `QueueFull`. The engine thread
    /// takes as many more in, to choose between tenants.
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
    tenant: Tenant,
    reply: oneshot::Sender<Reply>,
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
            pending: FairQueue::default(),
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

    /// Queues tokenized inputs of `tenant` without waiting; the receiver yields one vector per
    /// input.
    pub fn submit(
        &self,
        inputs: Vec<Vec<u32>>,
        tenant: Tenant,
    ) -> Result<oneshot::Receiver<Reply>, SubmitError> {
        if inputs.is_empty() || inputs.iter().any(Vec::is_empty) {
            return Err(SubmitError::Invalid("empty input".into()));
        }
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job {
            inputs,
            tenant,
            reply,
        }) {
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

/// A request being served: its inputs in length order, handed out to forward passes one at a
/// time, and the vectors computed so far.
struct Pending {
    job: Job,
    /// Input indexes, shortest first (neighbours in one pass pad little).
    order: Vec<usize>,
    /// Inputs of `order` handed to passes.
    next: usize,
    out: Vec<Vec<f32>>,
    /// Vectors received.
    filled: usize,
}

impl Pending {
    fn new(job: Job) -> Self {
        let mut order: Vec<usize> = (0..job.inputs.len()).collect();
        order.sort_by_key(|&i| job.inputs[i].len());
        let out = vec![Vec::new(); job.inputs.len()];
        Self {
            job,
            order,
            next: 0,
            out,
            filled: 0,
        }
    }
}

/// One input of a forward pass: which request, which of its inputs.
#[derive(Clone, Copy)]
struct Slot {
    job: u64,
    input: usize,
}

struct Worker {
    model: Arc<dyn Embedder>,
    config: EmbeddingConfig,
    rx: Receiver<Job>,
    stats: Arc<EmbeddingStats>,
    /// Requests with inputs not yet handed to a pass, by tenant.
    pending: FairQueue<u64>,
}

impl Worker {
    fn run(mut self) {
        let mut jobs: HashMap<u64, Pending> = HashMap::new();
        let mut ids = 0u64;
        while self.receive(&mut jobs, &mut ids) {
            let pass = self.plan_pass(&mut jobs);
            if pass.is_empty() {
                continue;
            }
            match catch_unwind(AssertUnwindSafe(|| self.run_pass(&jobs, &pass))) {
                Ok(Ok(vectors)) => deliver(&mut jobs, &pass, vectors),
                Ok(Err(e)) => self.retry_alone(&mut jobs, &pass, e),
                Err(_) => {
                    tracing::error!("embedding model panicked; stopping the engine");
                    break;
                }
            }
        }
        self.stats.alive.store(false, Ordering::SeqCst);
        // Nobody waits forever: what was taken or is still queued learns that the engine stopped.
        self.pending.drain().for_each(drop);
        for (_, p) in jobs.drain() {
            let _ = p.job.reply.send(Err(EngineError::Stopped));
        }
        while let Ok(job) = self.rx.try_recv() {
            let _ = job.reply.send(Err(EngineError::Stopped));
        }
        drop(self);
        crate::release_free_memory();
    }

    /// Moves queued requests into `jobs` (blocking while there is nothing to do), up to the
    /// queue's capacity, so that the next pass can choose between tenants. False once every
    /// handle is gone and nothing is left.
    fn receive(&mut self, jobs: &mut HashMap<u64, Pending>, ids: &mut u64) -> bool {
        let mut admit = |pending: &mut FairQueue<u64>, job: Job| {
            *ids += 1;
            pending.push(job.tenant.clone(), *ids);
            jobs.insert(*ids, Pending::new(job));
        };
        if self.pending.is_empty() {
            match self.rx.recv() {
                Ok(job) => admit(&mut self.pending, job),
                Err(_) => return false,
            }
        }
        while self.pending.len() < self.config.queue_capacity.max(1) {
            match self.rx.try_recv() {
                Ok(job) => admit(&mut self.pending, job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        true
    }

    /// The inputs of the next forward pass: one input from each tenant in turn (a tenant's
    /// requests in arrival order) while the padded size fits the token budget and the count the
    /// batch size. A request whose client has gone is dropped here.
    fn plan_pass(&mut self, jobs: &mut HashMap<u64, Pending>) -> Vec<Slot> {
        let mut pass: Vec<Slot> = Vec::new();
        let mut longest = 0;
        while let Some(&id) = self.pending.front() {
            let Some(p) = jobs.get_mut(&id) else {
                self.pending.pop();
                continue;
            };
            if p.job.reply.is_closed() {
                self.pending.pop();
                if !pass.iter().any(|s| s.job == id) {
                    jobs.remove(&id);
                }
                continue;
            }
            let input = p.order[p.next];
            let len = p.job.inputs[input].len();
            let wider = longest.max(len);
            if !pass.is_empty()
                && (wider * (pass.len() + 1) > self.config.max_batch_tokens
                    || pass.len() + 1 > self.config.max_batch_size)
            {
                break;
            }
            longest = wider;
            pass.push(Slot { job: id, input });
            p.next += 1;
            if p.next == p.order.len() {
                self.pending.pop();
            } else {
                self.pending.rotate();
            }
        }
        // Shortest first: the model pads each pass to its longest input anyway.
        pass.sort_by_key(|s| jobs.get(&s.job).map_or(0, |p| p.job.inputs[s.input].len()));
        pass
    }

    /// Embeds the inputs of `pass`, in its order.
    fn run_pass(
        &self,
        jobs: &HashMap<u64, Pending>,
        pass: &[Slot],
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let batch: Vec<Vec<u32>> = pass
            .iter()
            .filter_map(|s| jobs.get(&s.job).map(|p| p.job.inputs[s.input].clone()))
            .collect();
        let vectors = self.model.embed(&batch)?;
        if vectors.len() != pass.len() {
            return Err(EngineError::Compute(format!(
                "the model returned {} vectors for {} inputs",
                vectors.len(),
                pass.len()
            )));
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.inputs.fetch_add(batch.len(), Ordering::Relaxed);
        Ok(vectors)
    }

    /// A pass failed: runs each request's part of it alone, so that only the request at fault
    /// gets the error (and its other inputs are dropped).
    fn retry_alone(&mut self, jobs: &mut HashMap<u64, Pending>, pass: &[Slot], first: EngineError) {
        let mut owners: Vec<u64> = pass.iter().map(|s| s.job).collect();
        owners.sort_unstable();
        owners.dedup();
        let alone = owners.len() == 1;
        for id in owners {
            let part: Vec<Slot> = pass.iter().copied().filter(|s| s.job == id).collect();
            let result = if alone {
                Err(first.clone())
            } else {
                catch_unwind(AssertUnwindSafe(|| self.run_pass(jobs, &part)))
                    .unwrap_or_else(|_| Err(EngineError::Compute("the model panicked".into())))
            };
            match result {
                Ok(vectors) => deliver(jobs, &part, vectors),
                Err(e) => {
                    tracing::warn!(error = %e, "embedding request failed");
                    self.pending.retain(|j| *j != id);
                    if let Some(p) = jobs.remove(&id) {
                        let _ = p.job.reply.send(Err(e));
                    }
                }
            }
        }
    }
}

/// Stores the vectors of `pass` with their requests and answers every request now complete.
fn deliver(jobs: &mut HashMap<u64, Pending>, pass: &[Slot], vectors: Vec<Vec<f32>>) {
    for (slot, v) in pass.iter().zip(vectors) {
        let Some(p) = jobs.get_mut(&slot.job) else {
            continue;
        };
        p.out[slot.input] = v;
        p.filled += 1;
        if p.filled == p.out.len() {
            if let Some(p) = jobs.remove(&slot.job) {
                let _ = p.job.reply.send(Ok(p.out));
            }
        } else if p.job.reply.is_closed() {
            // The client has gone: its remaining inputs are skipped when their turn comes.
            jobs.remove(&slot.job);
        }
    }
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

    /// Records the inputs of every pass; the first pass waits for `go` after saying it has
    /// started, so that a test can queue requests behind it.
    struct Gated {
        passes: std::sync::Mutex<Vec<Vec<Vec<u32>>>>,
        started: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
        go: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    }
    impl Embedder for Gated {
        fn embed(&self, batch: &[Vec<u32>]) -> nfai_models::Result<Vec<Vec<f32>>> {
            let first = {
                let mut passes = self.passes.lock().unwrap();
                passes.push(batch.to_vec());
                passes.len() == 1
            };
            if first {
                self.started.lock().unwrap().send(()).unwrap();
                self.go.lock().unwrap().recv().unwrap();
            }
            Toy.embed(batch)
        }
    }

    /// An engine over [`Gated`], its first pass started and held, and the key to release it.
    fn gated(
        config: EmbeddingConfig,
        first: Vec<Vec<u32>>,
    ) -> (
        EmbeddingEngine,
        Arc<Gated>,
        std::sync::mpsc::Sender<()>,
        oneshot::Receiver<Reply>,
    ) {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel();
        let model = Arc::new(Gated {
            passes: Default::default(),
            started: started_tx.into(),
            go: go_rx.into(),
        });
        let engine = EmbeddingEngine::start("gated", model.clone(), config).unwrap();
        let rx = engine.submit(first, tenant("a")).unwrap();
        started.recv().unwrap();
        (engine, model, go, rx)
    }

    fn tenant(name: &str) -> Tenant {
        Some(name.into())
    }

    #[tokio::test]
    async fn a_tenants_backlog_does_not_hold_back_another_tenant() {
        let config = EmbeddingConfig {
            max_batch_tokens: 1000,
            max_batch_size: 4,
            queue_capacity: 64,
        };
        let (engine, model, go, first) = gated(config, vec![vec![1, 1]; 4]);
        let flood: Vec<_> = (0..9)
            .map(|i| engine.submit(vec![vec![2, i]; 4], tenant("a")).unwrap())
            .collect();
        let victim = engine.submit(vec![vec![7, 7, 7]], tenant("b")).unwrap();
        go.send(()).unwrap();
        assert_eq!(victim.await.unwrap().unwrap(), vec![vec![3.0, 21.0]]);
        first.await.unwrap().unwrap();
        for (i, rx) in flood.into_iter().enumerate() {
            assert_eq!(
                rx.await.unwrap().unwrap(),
                vec![vec![2.0, 2.0 + i as f32]; 4]
            );
        }
        let passes = model.passes.lock().unwrap();
        // 41 inputs in passes of 4; the victim's input rides in the pass right after the held
        // one, not behind the 36 inputs queued before it.
        assert_eq!(passes.len(), 11);
        assert!(passes.iter().all(|p| p.len() <= 4));
        let at = passes.iter().position(|p| p.contains(&vec![7, 7, 7]));
        assert_eq!(at, Some(1));
    }

    #[tokio::test]
    async fn a_request_spans_passes_within_the_budget_and_keeps_its_order() {
        let config = EmbeddingConfig {
            max_batch_tokens: 10,
            max_batch_size: 3,
            queue_capacity: 8,
        };
        let engine = EmbeddingEngine::start("toy", Arc::new(Toy), config).unwrap();
        let lens = [5usize, 1, 11, 2, 3, 2, 3];
        let inputs: Vec<Vec<u32>> = lens.iter().map(|&n| vec![1; n]).collect();
        let got = engine.submit(inputs, None).unwrap().await.unwrap().unwrap();
        let want: Vec<Vec<f32>> = lens.iter().map(|&n| vec![n as f32; 2]).collect();
        assert_eq!(got, want);
        // Shortest first: [1, 2, 2], [3, 3], [5], [11] (longer than the budget: alone).
        assert_eq!(engine.stats().batches.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_cancelled_request_is_not_computed() {
        let config = EmbeddingConfig {
            max_batch_tokens: 1000,
            max_batch_size: 2,
            queue_capacity: 8,
        };
        let (engine, model, go, first) = gated(config, vec![vec![1]]);
        drop(engine.submit(vec![vec![5]; 6], tenant("b")).unwrap());
        let kept = engine.submit(vec![vec![6]], tenant("c")).unwrap();
        go.send(()).unwrap();
        first.await.unwrap().unwrap();
        assert_eq!(kept.await.unwrap().unwrap(), vec![vec![1.0, 6.0]]);
        let passes = model.passes.lock().unwrap();
        assert!(passes.iter().flatten().all(|input| input != &vec![5]));
        assert_eq!(engine.stats().inputs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_requests_get_their_own_vectors_in_order() {
        let engine =
            EmbeddingEngine::start("toy", Arc::new(Toy), EmbeddingConfig::default()).unwrap();
        let a = engine.submit(vec![vec![1, 2, 3], vec![4]], None).unwrap();
        let b = engine.submit(vec![vec![10; 7]], None).unwrap();
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
        let a = engine.submit(vec![query.clone()], None).unwrap();
        let b = engine.submit(passages.clone(), tenant("ingest")).unwrap();
        let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        assert_eq!(a.len(), 1);
        assert_eq!(b.len(), 2);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        for (got, ids) in a
            .iter()
            .chain(&b)
            .zip(std::iter::once(&query).chain(&passages))
        {
            // A lone short input takes e5's 4-bit rows, a batch of 16 tokens or more its 8-bit
            // tiles; the two forms agree to a cosine above 0.9998 (models' e5 tests).
            let alone = model.embed(std::slice::from_ref(ids)).unwrap();
            assert!(dot(got, &alone[0]) > 0.9998);
        }
        assert!(dot(&a[0], &b[0]) > dot(&a[0], &b[1]));
    }

    #[tokio::test]
    async fn model_errors_reach_the_caller_and_the_engine_survives() {
        let engine =
            EmbeddingEngine::start("toy", Arc::new(Toy), EmbeddingConfig::default()).unwrap();
        let bad = engine.submit(vec![vec![666]], None).unwrap().await.unwrap();
        assert!(matches!(bad, Err(EngineError::Input(_))));
        let good = engine.submit(vec![vec![1]], None).unwrap().await.unwrap();
        assert_eq!(good.unwrap(), vec![vec![1.0, 1.0]]);
        // A bad request batched with a good one fails alone.
        let bad = engine.submit(vec![vec![666]], None).unwrap();
        let good = engine.submit(vec![vec![2, 2]], tenant("b")).unwrap();
        assert!(bad.await.unwrap().is_err());
        assert_eq!(good.await.unwrap().unwrap(), vec![vec![2.0, 4.0]]);
        assert!(engine.submit(vec![], None).is_err());
    }
}
