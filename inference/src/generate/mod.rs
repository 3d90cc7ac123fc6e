//! The generation engine: a handle that queues validated requests, and the scheduler thread
//! that runs them with continuous batching.
//!
//! The handle holds the sending half of a bounded channel; the thread owns the model's sequences
//! and their KV caches. Each request gets its own bounded event channel, sized so the thread
//! never waits on a slow client: one step emits at most one event per sequence.

mod admission;
mod prefix;
mod scheduler;
mod sequence;
mod waiting;

pub use admission::ServiceTime;
pub use prefix::MIN_PREFIX_TOKENS;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use nfai_models::{CausalLm, TextTokenizer};
use tokio::sync::mpsc;

use crate::histogram::{self, AtomicHistogram};
use crate::sampling::SamplingParams;
use crate::{EngineError, SubmitError};

/// A request the router has validated: the prompt is tokenized and fits the context.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub prompt_ids: Vec<u32>,
    /// At least 1; `prompt_ids.len() + max_new_tokens` fits the model's context.
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    /// Non-empty strings; generation ends before the first one and it is not returned.
    pub stop: Vec<String>,
    /// Keep going past end-of-sequence tokens (benchmarks, reference comparisons).
    pub ignore_eos: bool,
    /// The grammar the output must follow (structured outputs, tool calls); compiled by
    /// [`GenerationEngine::constrain`].
    pub constraint: Option<crate::constrain::Constraint>,
    /// Who the request is accounted to: waiting requests of different tenants are admitted in
    /// turn.
    pub tenant: crate::Tenant,
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_new_tokens` reached.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// Token counts of a finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens whose keys and values came from the prefix cache instead of a prefill.
    pub cached_tokens: usize,
}

/// What the engine sends back for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerateEvent {
    /// A generated token and the text it completed (may be empty while a character or a
    /// possible stop string is incomplete).
    Token { id: u32, text: String },
    /// The last event of a successful request; `text` is any held-back text released at the end.
    Finished {
        reason: FinishReason,
        usage: Usage,
        text: String,
    },
    /// The last event of a failed request.
    Failed(EngineError),
}

/// Limits of one generation engine.
#[derive(Debug, Clone)]
pub struct GenerationConfig {
    /// Sequences decoded together.
    pub max_batch: usize,
    /// Requests that may wait for a free batch slot before new ones get `QueueFull`.
    pub queue_capacity: usize,
    /// Prompt tokens processed per step across all sequences being prefilled, so that long
    /// prompts do not stall the decode of running sequences for long.
    pub prefill_chunk: usize,
    /// Bytes of KV cache kept from finished sequences for prompts that share their prefix; 0
    /// turns the prefix cache off.
    pub prefix_cache_bytes: usize,
    /// Admission by waiting time: when every slot is taken and a new request would wait longer
    /// than this for one (the requests ahead of it, at the recent time a sequence spends in
    /// the batch), it gets `Busy` at once instead of joining the queue. The queue then holds
    /// about this much waiting, so admitted requests keep their latency under overload.
    /// `None` admits up to `queue_capacity` whatever the wait.
    pub max_queue_wait: Option<std::time::Duration>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_batch: 4,
            queue_capacity: 64,
            prefill_chunk: 512,
            prefix_cache_bytes: 64 << 20,
            max_queue_wait: None,
        }
    }
}

pub(crate) struct Admission {
    request: GenerateRequest,
    events: mpsc::Sender<GenerateEvent>,
    /// When the request was queued; its wait for a batch slot is measured from here.
    queued_at: std::time::Instant,
}

/// Counters the engine thread keeps up to date, for metrics and tests.
#[derive(Debug)]
pub struct EngineStats {
    /// Sequences in the running batch.
    pub active: AtomicUsize,
    /// Requests queued and not yet admitted.
    pub waiting: AtomicUsize,
    /// Sequences dropped because their client went away.
    pub cancelled: AtomicUsize,
    /// Forward steps run.
    pub steps: AtomicUsize,
    /// False once the thread has exited.
    pub alive: AtomicBool,
    /// Sequences in each forward step.
    pub batch_size: AtomicHistogram,
    /// Seconds each admitted request waited in the queue for a batch slot.
    pub queue_wait: AtomicHistogram,
    /// The recent time a sequence spends in the batch, for admission by waiting time.
    pub service_time: ServiceTime,
    /// Requests refused with `Busy` (see [`GenerationConfig::max_queue_wait`]).
    pub shed: AtomicUsize,
    /// Running sequences paused to give a slot to a tenant that had none running.
    pub preempted: AtomicUsize,
    /// Requests that started from a cached prefix, and those that found none.
    pub prefix_hits: AtomicUsize,
    pub prefix_misses: AtomicUsize,
    /// Prompt tokens taken from the prefix cache instead of prefilled.
    pub prefix_cached_tokens: AtomicUsize,
    /// Bytes the prefix cache holds.
    pub prefix_bytes: AtomicUsize,
}

impl Default for EngineStats {
    fn default() -> Self {
        Self {
            active: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            cancelled: AtomicUsize::new(0),
            steps: AtomicUsize::new(0),
            alive: AtomicBool::new(false),
            batch_size: AtomicHistogram::new(histogram::BATCH_SIZES),
            queue_wait: AtomicHistogram::new(histogram::LATENCY_SECONDS),
            service_time: ServiceTime::default(),
            shed: AtomicUsize::new(0),
            preempted: AtomicUsize::new(0),
            prefix_hits: AtomicUsize::new(0),
            prefix_misses: AtomicUsize::new(0),
            prefix_cached_tokens: AtomicUsize::new(0),
            prefix_bytes: AtomicUsize::new(0),
        }
    }
}

/// A cheap, cloneable handle to one model's generation thread.
#[derive(Clone)]
pub struct GenerationEngine {
    tx: SyncSender<Admission>,
    stats: Arc<EngineStats>,
    tokenizer: Arc<TextTokenizer>,
    model: Arc<dyn CausalLm>,
    queue_capacity: usize,
    max_batch: usize,
    max_queue_wait: Option<std::time::Duration>,
    /// The model's grammar compiler, built on first use and shared by every clone.
    grammars: Arc<
        std::sync::OnceLock<
            Result<Arc<crate::constrain::Grammars>, crate::constrain::ConstraintError>,
        >,
    >,
}

impl std::fmt::Debug for GenerationEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationEngine")
            .field("info", self.model.info())
            .finish()
    }
}

impl GenerationEngine {
    /// Starts the scheduler thread for `model`.
    pub fn start(
        name: &str,
        model: Arc<dyn CausalLm>,
        tokenizer: TextTokenizer,
        config: GenerationConfig,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(config.queue_capacity.max(1));
        let stats = Arc::new(EngineStats::default());
        stats.alive.store(true, Ordering::SeqCst);
        let tokenizer = Arc::new(tokenizer);
        let queue_capacity = config.queue_capacity;
        let max_batch = config.max_batch;
        let max_queue_wait = config.max_queue_wait;
        let thread =
            scheduler::Scheduler::new(model.clone(), tokenizer.clone(), config, rx, stats.clone());
        std::thread::Builder::new()
            .name(format!("gen-{name}"))
            .spawn(move || thread.run())?;
        Ok(Self {
            tx,
            stats,
            tokenizer,
            model,
            queue_capacity,
            max_batch,
            max_queue_wait,
            grammars: Arc::default(),
        })
    }

    /// Compiles `format` for this model's vocabulary. The first call builds the model's token
    /// trie (tens of milliseconds for a large vocabulary); run it off the async workers.
    pub fn constrain(
        &self,
        format: &crate::constrain::OutputFormat,
    ) -> Result<crate::constrain::Constraint, crate::constrain::ConstraintError> {
        let grammars = self.grammars.get_or_init(|| {
            crate::constrain::Grammars::new(&self.tokenizer, self.model.info().vocab_size)
                .map(Arc::new)
        });
        grammars.as_ref().map_err(Clone::clone)?.compile(format)
    }

    /// Queues a request without waiting. The receiver yields events until `Finished` or
    /// `Failed`; dropping it cancels the request within one step.
    pub fn submit(
        &self,
        request: GenerateRequest,
    ) -> Result<mpsc::Receiver<GenerateEvent>, SubmitError> {
        if request.prompt_ids.is_empty() || request.max_new_tokens == 0 {
            return Err(SubmitError::Invalid(
                "an empty prompt or max_new_tokens of 0".into(),
            ));
        }
        if !self.is_alive() {
            return Err(SubmitError::Stopped);
        }
        if let Some(bound) = self.max_queue_wait {
            let expected = admission::expected_wait_us(
                self.stats.waiting.load(Ordering::SeqCst),
                self.stats.active.load(Ordering::SeqCst),
                self.max_batch,
                self.stats.service_time.micros(),
            );
            let bound_us = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
            if expected > bound_us {
                self.stats.shed.fetch_add(1, Ordering::Relaxed);
                return Err(SubmitError::Busy {
                    expected_ms: expected / 1000,
                    bound_ms: bound_us / 1000,
                });
            }
        }
        // `waiting` counts the channel and the scheduler's own queue together: it is the bound.
        if self.stats.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue_capacity.max(1) {
            self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::QueueFull {
                capacity: self.queue_capacity,
            });
        }
        let (events, rx) = mpsc::channel(request.max_new_tokens + 2);
        let queued_at = std::time::Instant::now();
        match self.tx.try_send(Admission {
            request,
            events,
            queued_at,
        }) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => SubmitError::QueueFull {
                        capacity: self.queue_capacity,
                    },
                    TrySendError::Disconnected(_) => SubmitError::Stopped,
                })
            }
        }
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    pub fn model(&self) -> &Arc<dyn CausalLm> {
        &self.model
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    pub fn is_alive(&self) -> bool {
        self.stats.alive.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests;
