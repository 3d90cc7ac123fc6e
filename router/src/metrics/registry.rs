//! [`Metrics`], the request families every request adds to, and the [`Collector`]s that add
//! families of their own.

use std::sync::{Arc, RwLock};

use nfai_inference::histogram::{LATENCY_SECONDS, TOKEN_COUNTS};

use super::family::{CounterVec, Exposition, HistogramVec};

/// A component that writes its own families into `/metrics`.
pub trait Collector: Send + Sync {
    fn collect(&self, out: &mut Exposition);
}

/// The request metrics of one running app.
pub struct Metrics {
    pub requests: CounterVec<3>,
    pub duration: HistogramVec<2>,
    pub ttft: HistogramVec<2>,
    pub inter_token: HistogramVec<2>,
    pub prompt_tokens: CounterVec<2>,
    pub completion_tokens: CounterVec<2>,
    pub request_prompt_tokens: HistogramVec<2>,
    pub upstream_attempts: CounterVec<2>,
    pub upstream_errors: CounterVec<2>,
    pub upstream_fallbacks: CounterVec<2>,
    /// Retrieval latencies by operation (`embed`, `search`, `upsert`, …).
    pub retrieval_duration: HistogramVec<1>,
    /// Retrieval cache lookups by cache and result (`hit`, `miss`).
    pub retrieval_cache: CounterVec<2>,
    collectors: RwLock<Vec<Arc<dyn Collector>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            requests: CounterVec::new(
                "nfai_requests_total",
                "HTTP requests answered, by route, model and status code.",
                ["route", "model", "status"],
            ),
            duration: HistogramVec::new(
                "nfai_request_duration_seconds",
                "End-to-end latency: request received to the last byte of the response.",
                ["route", "model"],
                LATENCY_SECONDS,
            ),
            ttft: HistogramVec::new(
                "nfai_time_to_first_token_seconds",
                "Request received to its first generated token.",
                ["route", "model"],
                LATENCY_SECONDS,
            ),
            inter_token: HistogramVec::new(
                "nfai_inter_token_latency_seconds",
                "Time between consecutive generated tokens of a request.",
                ["route", "model"],
                LATENCY_SECONDS,
            ),
            prompt_tokens: CounterVec::new(
                "nfai_prompt_tokens_total",
                "Prompt (input) tokens processed.",
                ["route", "model"],
            ),
            completion_tokens: CounterVec::new(
                "nfai_completion_tokens_total",
                "Completion (generated) tokens.",
                ["route", "model"],
            ),
            request_prompt_tokens: HistogramVec::new(
                "nfai_request_prompt_tokens",
                "Prompt tokens per request.",
                ["route", "model"],
                TOKEN_COUNTS,
            ),
            upstream_attempts: CounterVec::new(
                "nfai_upstream_attempts_total",
                "Attempts of routed requests at an upstream or native target.",
                ["model", "target"],
            ),
            upstream_errors: CounterVec::new(
                "nfai_upstream_errors_total",
                "Attempts that failed (and may have fallen back).",
                ["model", "target"],
            ),
            upstream_fallbacks: CounterVec::new(
                "nfai_upstream_fallbacks_total",
                "Attempts made after an earlier attempt of the same request failed.",
                ["model", "target"],
            ),
            retrieval_duration: HistogramVec::new(
                "nfai_retrieval_duration_seconds",
                "Retrieval operations, by operation.",
                ["operation"],
                LATENCY_SECONDS,
            ),
            retrieval_cache: CounterVec::new(
                "nfai_retrieval_cache_lookups_total",
                "Retrieval cache lookups, by cache and result (hit or miss).",
                ["cache", "result"],
            ),
            collectors: RwLock::new(Vec::new()),
        }
    }

    /// Adds a component's own families to every later `/metrics`.
    pub fn register(&self, c: Arc<dyn Collector>) {
        if let Ok(mut all) = self.collectors.write() {
            all.push(c);
        }
    }

    /// Every family, in the text format.
    pub fn render(&self, out: &mut Exposition) {
        self.requests.render(out);
        self.duration.render(out);
        self.ttft.render(out);
        self.inter_token.render(out);
        self.prompt_tokens.render(out);
        self.completion_tokens.render(out);
        self.request_prompt_tokens.render(out);
        self.upstream_attempts.render(out);
        self.upstream_errors.render(out);
        self.upstream_fallbacks.render(out);
        self.retrieval_duration.render(out);
        self.retrieval_cache.render(out);
        let collectors = self
            .collectors
            .read()
            .map(|c| c.clone())
            .unwrap_or_default();
        for c in collectors {
            c.collect(out);
        }
    }
}
