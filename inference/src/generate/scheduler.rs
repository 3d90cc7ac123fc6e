//! The scheduler thread: continuous batching over one model.
//!
//! Each step it admits waiting requests into free batch slots (the tenants of waiting requests
//! in turn), drops sequences and waiting requests whose client has gone, runs one batched
//! forward pass (prompt chunks of newcomers together with one token of every decoding
//! sequence), samples, and emits events. A panic or an error in the model fails
//! the sequences of that step with an error event instead of taking the process down; a panic
//! also stops the engine, which the handle then reports as stopped.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;

use nfai_models::{BatchEntry, CausalLm, TextTokenizer};

use super::prefix::{PrefixCache, usable_prefix};
use super::sequence::{Sequence, Step};
use super::waiting::{Waiting, pause_for};
use super::{Admission, EngineStats, GenerationConfig};
use crate::EngineError;
use crate::fair::FairQueue;

pub(super) struct Scheduler {
    model: Arc<dyn CausalLm>,
    tokenizer: Arc<TextTokenizer>,
    config: GenerationConfig,
    rx: Receiver<Admission>,
    /// Requests taken off the channel and sequences paused, waiting for a slot, by tenant.
    waiting: FairQueue<Waiting>,
    stats: Arc<EngineStats>,
    active: Vec<Sequence>,
    /// Caches of finished sequences, for prompts that share their prefix.
    prefixes: PrefixCache,
    /// Scratch row for sampling, reused across steps.
    row: Vec<f32>,
}

impl Scheduler {
    pub fn new(
        model: Arc<dyn CausalLm>,
        tokenizer: Arc<TextTokenizer>,
        config: GenerationConfig,
        rx: Receiver<Admission>,
        stats: Arc<EngineStats>,
    ) -> Self {
        Self {
            model,
            tokenizer,
            prefixes: PrefixCache::new(config.prefix_cache_bytes),
            config,
            rx,
            waiting: FairQueue::default(),
            stats,
            active: Vec::new(),
            row: Vec::new(),
        }
    }

    pub fn run(mut self) {
        loop {
            if !self.admit() {
                break;
            }
            self.drop_cancelled();
            if self.active.is_empty() {
                continue;
            }
            self.stats.batch_size.observe(self.active.len() as f64);
            let outcome = catch_unwind(AssertUnwindSafe(|| self.step()));
            self.stats.steps.fetch_add(1, Ordering::Relaxed);
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "forward step failed; failing its sequences");
                    self.fail_all(e);
                }
                Err(_) => {
                    tracing::error!("forward step panicked; stopping the engine");
                    self.fail_all(EngineError::Compute("the model panicked".into()));
                    break;
                }
            }
            self.stats.active.store(self.active.len(), Ordering::SeqCst);
        }
        self.stats.alive.store(false, Ordering::SeqCst);
        // Fail whatever is still queued or paused so no client waits forever.
        let queued: Vec<Waiting> = self.waiting.drain().collect();
        for w in queued.into_iter().chain(std::iter::from_fn(|| {
            self.rx.try_recv().ok().map(|a| Waiting::New(Box::new(a)))
        })) {
            match w {
                Waiting::New(a) => {
                    self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
                    let _ = a
                        .events
                        .try_send(super::GenerateEvent::Failed(EngineError::Stopped));
                }
                Waiting::Paused(mut seq) => {
                    seq.fail(EngineError::Stopped);
                }
            }
        }
        tracing::info!("generation engine stopped");
        drop(self);
        crate::release_free_memory();
    }

    /// Takes queued requests off the channel, then moves them into free batch slots, each
    /// tenant in turn. Blocks when idle. Returns false when every handle is gone and nothing is
    /// running or waiting.
    fn admit(&mut self) -> bool {
        if self.active.is_empty() && self.waiting.is_empty() {
            match self.rx.recv() {
                Ok(a) => self
                    .waiting
                    .push(a.request.tenant.clone(), Waiting::New(Box::new(a))),
                Err(_) => return false,
            }
        }
        // The handle bounds the total waiting at the queue's capacity.
        while let Ok(a) = self.rx.try_recv() {
            self.waiting
                .push(a.request.tenant.clone(), Waiting::New(Box::new(a)));
        }
        let max_batch = self.config.max_batch.max(1);
        while self.active.len() < max_batch {
            match self.waiting.pop() {
                Some(w) => self.enter(w),
                None => break,
            }
        }
        let kv_budget = max_batch * self.model.info().context_length;
        while let Some((tenant, index)) =
            pause_for(&self.active, &self.waiting, max_batch, kv_budget)
        {
            let paused = self.active.swap_remove(index);
            self.waiting
                .push_front(paused.tenant.clone(), Waiting::Paused(Box::new(paused)));
            self.stats.preempted.fetch_add(1, Ordering::Relaxed);
            match self.waiting.pop_tenant(&tenant) {
                Some(w) => self.enter(w),
                None => break,
            }
        }
        self.stats.active.store(self.active.len(), Ordering::SeqCst);
        true
    }

    /// Moves a waiting entry into the batch: a new request starts, a paused sequence resumes.
    fn enter(&mut self, w: Waiting) {
        match w {
            Waiting::New(a) => self.push(*a),
            Waiting::Paused(seq) => self.active.push(*seq),
        }
    }

    fn push(&mut self, a: Admission) {
        if a.events.is_closed() {
            self.stats.cancelled.fetch_add(1, Ordering::SeqCst);
            self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let waited = a.queued_at.elapsed();
        self.stats.queue_wait.observe(waited.as_secs_f64());
        self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
        let (cache, cached) = self.reuse(&a.request.prompt_ids);
        self.active
            .push(Sequence::new(a.request, a.events, cache, cached));
    }

    /// A cache for a new prompt: a copy of the longest shared prefix held by a running
    /// sequence or by the prefix cache, or an empty one; and how many prompt tokens it holds.
    fn reuse(&mut self, prompt: &[u32]) -> (nfai_models::SeqKvCache, usize) {
        if self.prefixes.is_enabled() {
            let running = self
                .active
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let held: Vec<u32> = s.cached_tokens().collect();
                    (i, usable_prefix(&held, prompt))
                })
                .max_by_key(|&(_, n)| n);
            let stored = self.prefixes.best(prompt);
            let copied = match (running, stored) {
                (Some((i, n)), stored)
                    if n >= super::MIN_PREFIX_TOKENS && stored.is_none_or(|(_, m)| n >= m) =>
                {
                    self.active[i].cache.copy_prefix(n)
                }
                (_, Some((e, m))) => self.prefixes.copy(e, m),
                _ => Ok(None),
            };
            match copied {
                Ok(Some(cache)) => {
                    let n = cache.len();
                    self.stats.prefix_hits.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .prefix_cached_tokens
                        .fetch_add(n, Ordering::Relaxed);
                    return (cache, n);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "copying a cached prefix failed"),
            }
            self.stats.prefix_misses.fetch_add(1, Ordering::Relaxed);
        }
        (self.model.new_cache(), 0)
    }

    /// Keeps a sequence's cache for later prompts with the same prefix.
    fn keep_prefix(&mut self, seq: Sequence) {
        if self.prefixes.is_enabled() {
            let (tokens, cache) = seq.into_cache();
            self.prefixes.insert(tokens, cache);
            self.stats
                .prefix_bytes
                .store(self.prefixes.bytes(), Ordering::Relaxed);
        }
    }

    fn drop_cancelled(&mut self) {
        let (mut new_gone, mut paused_gone) = (0, 0);
        self.waiting.retain(|w| match w {
            Waiting::New(a) if a.events.is_closed() => {
                new_gone += 1;
                false
            }
            Waiting::Paused(s) if s.is_cancelled() => {
                paused_gone += 1;
                false
            }
            _ => true,
        });
        if new_gone + paused_gone > 0 {
            self.stats
                .cancelled
                .fetch_add(new_gone + paused_gone, Ordering::SeqCst);
            self.stats.waiting.fetch_sub(new_gone, Ordering::SeqCst);
        }
        let mut gone = 0;
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].is_cancelled() {
                let seq = self.active.swap_remove(i);
                self.keep_prefix(seq);
                gone += 1;
            } else {
                i += 1;
            }
        }
        if gone > 0 {
            self.stats.cancelled.fetch_add(gone, Ordering::SeqCst);
            self.stats.active.store(self.active.len(), Ordering::SeqCst);
            tracing::debug!(gone, "dropped sequences whose client went away");
        }
    }

    /// One batched forward pass and the sampling that follows it.
    fn step(&mut self) -> Result<(), EngineError> {
        let mut budget = self.config.prefill_chunk.max(1);
        let mut fed = Vec::with_capacity(self.active.len());
        for seq in self.active.iter_mut() {
            if seq.is_prefilling() && budget == 0 {
                fed.push(0);
                continue;
            }
            let n = seq.next_tokens(budget).len();
            if seq.is_prefilling() {
                budget -= n.min(budget);
            }
            fed.push(n);
        }
        let mut rows = Vec::with_capacity(self.active.len());
        let mut batch: Vec<BatchEntry<'_>> = Vec::with_capacity(self.active.len());
        for (i, seq) in self.active.iter_mut().enumerate() {
            if fed[i] > 0 {
                rows.push(i);
                let (tokens, cache) = seq.step_input(fed[i]);
                batch.push(BatchEntry { tokens, cache });
            }
        }
        let logits = self.model.forward(&mut batch)?;
        drop(batch);
        let logits = logits
            .to_dtype(candle_core::DType::F32)
            .map_err(model_err)?;
        let vocab = logits.dim(1).map_err(model_err)?;
        let flat = logits
            .flatten_all()
            .map_err(model_err)?
            .to_vec1::<f32>()
            .map_err(model_err)?;
        self.sample_rows(&rows, &fed, &flat, vocab);
        Ok(())
    }

    fn sample_rows(&mut self, rows: &[usize], fed: &[usize], flat: &[f32], vocab: usize) {
        let mut done = Vec::new();
        for (r, &i) in rows.iter().enumerate() {
            let seq = &mut self.active[i];
            if seq.is_prefilling() {
                seq.prefilled += fed[i];
                if seq.prefilled < seq.prompt.len() {
                    continue;
                }
            }
            self.row.clear();
            self.row
                .extend_from_slice(&flat[r * vocab..(r + 1) * vocab]);
            let id = match seq.sample(&mut self.row) {
                Ok(id) => id,
                Err(e) => {
                    seq.fail(e);
                    done.push(i);
                    continue;
                }
            };
            if let Step::Done = seq.on_token(id, &self.tokenizer) {
                done.push(i);
            }
        }
        for i in done.into_iter().rev() {
            let seq = self.active.swap_remove(i);
            self.stats
                .service_time
                .observe(u64::try_from(seq.admitted_at.elapsed().as_micros()).unwrap_or(u64::MAX));
            self.keep_prefix(seq);
        }
    }

    fn fail_all(&mut self, e: EngineError) {
        for mut seq in self.active.drain(..) {
            seq.fail(e.clone());
        }
    }
}

fn model_err(e: candle_core::Error) -> EngineError {
    EngineError::Compute(e.to_string())
}
