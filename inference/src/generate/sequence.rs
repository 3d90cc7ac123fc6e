//! One sequence in the scheduler: its prompt, cache, sampler, detokenizer and event channel.

use std::sync::Arc;

use nfai_models::{SeqKvCache, TextTokenizer};
use tokio::sync::mpsc;

use super::{FinishReason, GenerateEvent, GenerateRequest, Usage};
use crate::EngineError;
use crate::detok::IncrementalDecoder;
use crate::sampling::Sampler;
use crate::stop::{StopMatcher, StopOutcome};

pub(super) struct Sequence {
    pub prompt: Vec<u32>,
    /// Prompt tokens already in the cache.
    pub prefilled: usize,
    /// The last sampled token, fed at the next decode step.
    pub next_input: Option<u32>,
    pub generated: usize,
    /// The sampled tokens, in order.
    pub output: Vec<u32>,
    /// Leading prompt tokens whose cache came from the prefix cache.
    pub cached: usize,
    pub max_new_tokens: usize,
    pub ignore_eos: bool,
    pub cache: SeqKvCache,
    pub sampler: Sampler,
    /// The grammar the output follows, if the request has one.
    constraint: Option<crate::constrain::Constraint>,
    decoder: IncrementalDecoder,
    stops: StopMatcher,
    events: mpsc::Sender<GenerateEvent>,
    /// Who the request is accounted to.
    pub tenant: crate::Tenant,
    /// When it entered the batch; its time there feeds the engine's service-time estimate.
    pub admitted_at: std::time::Instant,
}

/// Whether a sequence continues after a sampled token.
pub(super) enum Step {
    Continue,
    Done,
}

impl Sequence {
    /// A sequence whose `cache` already holds its first `cached` prompt tokens.
    pub fn new(
        request: GenerateRequest,
        events: mpsc::Sender<GenerateEvent>,
        cache: SeqKvCache,
        cached: usize,
    ) -> Self {
        let sampler = Sampler::new(request.sampling, &request.prompt_ids);
        Self {
            tenant: request.tenant,
            prompt: request.prompt_ids,
            prefilled: cached,
            next_input: None,
            generated: 0,
            output: Vec::new(),
            cached,
            max_new_tokens: request.max_new_tokens,
            ignore_eos: request.ignore_eos,
            cache,
            sampler,
            constraint: request.constraint,
            decoder: IncrementalDecoder::new(),
            stops: StopMatcher::new(request.stop),
            events,
            admitted_at: std::time::Instant::now(),
        }
    }

    /// Tokens its cache holds.
    pub fn cache_tokens(&self) -> usize {
        self.cache.len()
    }

    /// True when the client has gone (its receiver was dropped).
    pub fn is_cancelled(&self) -> bool {
        self.events.is_closed()
    }

    /// Tokens to feed at the next step, at most `budget` of the prompt when prefilling.
    pub fn next_tokens(&self, budget: usize) -> &[u32] {
        match self.next_input {
            Some(ref t) => std::slice::from_ref(t),
            None => {
                let end = (self.prefilled + budget.max(1)).min(self.prompt.len());
                &self.prompt[self.prefilled..end]
            }
        }
    }

    /// The tokens of this step (see [`Sequence::next_tokens`]) and the cache they extend.
    pub fn step_input(&mut self, budget: usize) -> (&[u32], &mut nfai_models::SeqKvCache) {
        let tokens = match self.next_input {
            Some(ref t) => std::slice::from_ref(t),
            None => {
                let end = (self.prefilled + budget.max(1)).min(self.prompt.len());
                &self.prompt[self.prefilled..end]
            }
        };
        (tokens, &mut self.cache)
    }

    /// The tokens whose keys and values the cache holds, in order.
    pub fn cached_tokens(&self) -> impl Iterator<Item = u32> + '_ {
        self.prompt
            .iter()
            .chain(&self.output)
            .copied()
            .take(self.cache.len())
    }

    /// Gives up the cache and the tokens it holds (for the prefix cache).
    pub fn into_cache(self) -> (Vec<u32>, SeqKvCache) {
        let mut tokens = self.prompt;
        tokens.extend(self.output);
        tokens.truncate(self.cache.len());
        (tokens, self.cache)
    }

    pub fn is_prefilling(&self) -> bool {
        self.next_input.is_none()
    }

    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt.len(),
            completion_tokens: self.generated,
            cached_tokens: self.cached,
        }
    }

    /// Handles a sampled token: emits its text, checks EOS, stop strings and length.
    /// Picks the next token from `row` (changed in place), within the grammar if there is one.
    pub fn sample(&mut self, row: &mut [f32]) -> Result<u32, EngineError> {
        if let Some(c) = self.constraint.as_mut() {
            c.mask(row)
                .map_err(|e| EngineError::Compute(format!("constrained decoding: {e}")))?;
        }
        Ok(self.sampler.sample(row))
    }

    pub fn on_token(&mut self, id: u32, tokenizer: &Arc<TextTokenizer>) -> Step {
        self.sampler.accept(id);
        self.generated += 1;
        self.output.push(id);
        self.next_input = Some(id);
        let is_eos = !self.ignore_eos && tokenizer.eos_ids().contains(&id);
        if is_eos {
            let text = self.final_text(tokenizer);
            return self.finish(FinishReason::Stop, text);
        }
        let complete = match self
            .constraint
            .as_mut()
            .map(|c| c.accept(id).map(|()| c.is_complete()))
        {
            Some(Err(e)) => {
                return self.fail(EngineError::Compute(format!("constrained decoding: {e}")));
            }
            Some(Ok(done)) => done,
            None => false,
        };
        let piece = match self.decoder.push(tokenizer, id) {
            Ok(p) => p,
            Err(e) => return self.fail(EngineError::Compute(e.to_string())),
        };
        match self.stops.push(&piece) {
            StopOutcome::Stopped(text) => {
                self.send(GenerateEvent::Token { id, text });
                self.finish(FinishReason::Stop, String::new())
            }
            StopOutcome::Continue(text) => {
                self.send(GenerateEvent::Token { id, text });
                if complete {
                    // The grammar allows nothing but end-of-sequence: end without another step.
                    let text = self.final_text(tokenizer);
                    self.finish(FinishReason::Stop, text)
                } else if self.generated >= self.max_new_tokens {
                    let text = self.final_text(tokenizer);
                    self.finish(FinishReason::Length, text)
                } else {
                    Step::Continue
                }
            }
        }
    }

    /// Text still held by the detokenizer and the stop matcher when the sequence ends.
    fn final_text(&mut self, tokenizer: &TextTokenizer) -> String {
        let tail = self.decoder.flush(tokenizer).unwrap_or_default();
        match self.stops.push(&tail) {
            StopOutcome::Stopped(t) => t,
            StopOutcome::Continue(t) => t + &self.stops.flush(),
        }
    }

    fn finish(&mut self, reason: FinishReason, text: String) -> Step {
        let usage = self.usage();
        self.send(GenerateEvent::Finished {
            reason,
            usage,
            text,
        });
        Step::Done
    }

    pub fn fail(&mut self, error: EngineError) -> Step {
        self.send(GenerateEvent::Failed(error));
        Step::Done
    }

    fn send(&self, event: GenerateEvent) {
        // The channel holds max_new_tokens + 2 events, so it is never full; a closed channel
        // means the client left, which the scheduler notices before the next step.
        let _ = self.events.try_send(event);
    }
}
