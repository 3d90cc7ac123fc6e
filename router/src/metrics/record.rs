//! [`RequestRecord`]: what one request did, filled in by whichever layer learns it (the model
//! it resolved to, its tokens and their timing, its upstream attempts) and read once when the
//! response has been sent, for the request metrics and the access log line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::registry::Metrics;

/// One request's figures; cheap to share (atomics and set-once cells).
#[derive(Debug)]
pub struct RequestRecord {
    metrics: Arc<Metrics>,
    /// The route's label (`/v1/chat/completions`, …).
    pub route: &'static str,
    pub started: Instant,
    model: OnceLock<String>,
    /// The id (never the secret) of the API key the caller authenticated with.
    key_id: OnceLock<String>,
    first_token: OnceLock<Instant>,
    /// Microseconds after `started` of the latest token.
    last_token_us: AtomicU64,
    tokens_seen: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    upstream_attempts: AtomicU64,
    upstream_errors: AtomicU64,
}

/// What [`RequestRecord::summary`] reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub model: Option<String>,
    pub ttft_seconds: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub upstream_attempts: u64,
    pub upstream_errors: u64,
}

impl RequestRecord {
    /// A request was answered: its status, latency and tokens.
    pub fn finish(&self, status: u16) {
        let m = &self.metrics;
        let s = self.summary();
        let model = s.model.as_deref().unwrap_or("");
        let route = self.route;
        let status = status.to_string();
        m.requests.inc([route, model, &status]);
        m.duration
            .observe([route, model], self.started.elapsed().as_secs_f64());
        if s.prompt_tokens > 0 || s.completion_tokens > 0 {
            m.prompt_tokens.add([route, model], s.prompt_tokens);
            m.completion_tokens.add([route, model], s.completion_tokens);
            m.request_prompt_tokens
                .observe([route, model], s.prompt_tokens as f64);
        }
    }

    pub fn new(metrics: Arc<Metrics>, route: &'static str) -> Self {
        Self {
            metrics,
            route,
            started: Instant::now(),
            model: OnceLock::new(),
            key_id: OnceLock::new(),
            first_token: OnceLock::new(),
            last_token_us: AtomicU64::new(0),
            tokens_seen: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
            upstream_attempts: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The model the request's name resolved to (the first one set wins).
    pub fn set_model(&self, model: &str) {
        let _ = self.model.set(model.to_string());
    }

    /// The caller's API key id, for the access log (set by the authentication layer).
    pub fn set_key_id(&self, id: &str) {
        let _ = self.key_id.set(id.to_string());
    }

    pub fn key_id(&self) -> Option<&str> {
        self.key_id.get().map(String::as_str)
    }

    pub fn model(&self) -> &str {
        self.model.get().map_or("", String::as_str)
    }

    /// A generated token reached the request: the first one sets the time to first token,
    /// later ones observe the gap since the one before.
    pub fn token(&self) {
        let now = Instant::now();
        let at = now.duration_since(self.started).as_micros() as u64;
        self.tokens_seen.fetch_add(1, Ordering::Relaxed);
        if self.first_token.set(now).is_ok() {
            self.last_token_us.store(at, Ordering::Relaxed);
            self.metrics.ttft.observe(
                [self.route, self.model()],
                now.duration_since(self.started).as_secs_f64(),
            );
            return;
        }
        let before = self.last_token_us.swap(at, Ordering::Relaxed);
        let gap = at.saturating_sub(before) as f64 / 1e6;
        self.metrics
            .inter_token
            .observe([self.route, self.model()], gap);
    }

    /// Token counts of a finished generation or embedding (added: a completion request may
    /// have several choices).
    pub fn usage(&self, prompt: u64, completion: u64) {
        self.prompt_tokens.fetch_add(prompt, Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(completion, Ordering::Relaxed);
    }

    /// A routed request tried an upstream target (`fallback`: after an earlier one failed).
    pub fn upstream_attempt(&self, target: &str) {
        let n = self.upstream_attempts.fetch_add(1, Ordering::Relaxed);
        self.metrics.upstream_attempts.inc([self.model(), target]);
        if n > 0 {
            self.metrics.upstream_fallbacks.inc([self.model(), target]);
        }
    }

    /// An upstream attempt failed.
    pub fn upstream_error(&self, target: &str) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
        self.metrics.upstream_errors.inc([self.model(), target]);
    }

    pub fn summary(&self) -> Summary {
        let seen = self.tokens_seen.load(Ordering::Relaxed);
        let completion = self.completion_tokens.load(Ordering::Relaxed);
        Summary {
            model: self.model.get().cloned(),
            ttft_seconds: self
                .first_token
                .get()
                .map(|t| t.duration_since(self.started).as_secs_f64()),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            // A stream the client left early has no usage: count the tokens it got.
            completion_tokens: completion.max(seen),
            upstream_attempts: self.upstream_attempts.load(Ordering::Relaxed),
            upstream_errors: self.upstream_errors.load(Ordering::Relaxed),
        }
    }
}
