//! `GET /metrics`: Prometheus text exposition of the model cache, the request metrics
//! (`crate::metrics`) and the generation engines' counters.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use nfai_cache::{CacheMetrics, EvictionReason, ModelState};
use nfai_inference::generate::EngineStats;

use crate::error::ApiError;
use crate::metrics::Exposition;
use crate::state::AppState;

const STATES: [ModelState; 5] = [
    ModelState::Unloaded,
    ModelState::Loading,
    ModelState::Ready,
    ModelState::Unloading,
    ModelState::Failed,
];

pub async fn handler(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let m = state.registry().cache().metrics().await?;
    let mut out = Exposition::new();
    out.raw(&render(&m));
    state.metrics().render(&mut out);
    render_engines(&state, &mut out);
    out.raw(&state.limiter().render_metrics());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out.into_string(),
    ))
}

/// Name, type, help and value of an engine family.
type EngineFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&EngineStats) -> usize,
);

/// The generation engines of the loaded chat models.
fn render_engines(state: &AppState, out: &mut Exposition) {
    let engines = state.registry().chat_engines();
    let gauges: [EngineFamily; 10] = [
        (
            "nfai_engine_running_sequences",
            "gauge",
            "Sequences in the model's running batch.",
            |s| s.active.load(Ordering::Relaxed),
        ),
        (
            "nfai_engine_waiting_sequences",
            "gauge",
            "Requests queued for a batch slot.",
            |s| s.waiting.load(Ordering::Relaxed),
        ),
        (
            "nfai_engine_cancelled_sequences_total",
            "counter",
            "Sequences dropped because their client went away.",
            |s| s.cancelled.load(Ordering::Relaxed),
        ),
        (
            "nfai_engine_steps_total",
            "counter",
            "Batched forward steps run.",
            |s| s.steps.load(Ordering::Relaxed),
        ),
        (
            "nfai_prefix_cache_hits_total",
            "counter",
            "Requests that started from a cached prompt prefix.",
            |s| s.prefix_hits.load(Ordering::Relaxed),
        ),
        (
            "nfai_prefix_cache_misses_total",
            "counter",
            "Requests that found no cached prompt prefix.",
            |s| s.prefix_misses.load(Ordering::Relaxed),
        ),
        (
            "nfai_prefix_cache_tokens_total",
            "counter",
            "Prompt tokens served from the prefix cache instead of prefilled.",
            |s| s.prefix_cached_tokens.load(Ordering::Relaxed),
        ),
        (
            "nfai_prefix_cache_bytes",
            "gauge",
            "Bytes of KV cache the prefix cache holds.",
            |s| s.prefix_bytes.load(Ordering::Relaxed),
        ),
        (
            "nfai_engine_shed_total",
            "counter",
            "Requests refused with 429 because they would have waited longer than engine.max_queue_wait_ms for a slot.",
            |s| s.shed.load(Ordering::Relaxed),
        ),
        (
            "nfai_engine_preempted_total",
            "counter",
            "Running sequences paused to give a batch slot to a key that had none running.",
            |s| s.preempted.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, get) in gauges {
        out.family(name, kind, help);
        for (id, m) in &engines {
            out.sample(name, &[("model", id)], get(m.engine.stats()) as f64);
        }
    }
    out.family(
        "nfai_engine_batch_size",
        "histogram",
        "Sequences in each forward step.",
    );
    for (id, m) in &engines {
        let h = m.engine.stats().batch_size.snapshot();
        out.histogram("nfai_engine_batch_size", &[("model", id)], &h);
    }
    out.family(
        "nfai_engine_queue_wait_seconds",
        "histogram",
        "Time a request waited in the model's queue for a batch slot.",
    );
    for (id, m) in &engines {
        let h = m.engine.stats().queue_wait.snapshot();
        out.histogram("nfai_engine_queue_wait_seconds", &[("model", id)], &h);
    }
}

/// Escapes a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn le(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".to_string()
    } else {
        v.to_string()
    }
}

/// The text format of `m`.
pub fn render(m: &CacheMetrics) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# HELP nfai_model_loads_total Model loads by outcome.");
    let _ = writeln!(o, "# TYPE nfai_model_loads_total counter");
    for x in &m.models {
        let id = esc(&x.model);
        let _ = writeln!(
            o,
            "nfai_model_loads_total{{model=\"{id}\",result=\"success\"}} {}",
            x.counters.loads_success
        );
        let _ = writeln!(
            o,
            "nfai_model_loads_total{{model=\"{id}\",result=\"failure\"}} {}",
            x.counters.loads_failure
        );
    }
    let _ = writeln!(
        o,
        "# HELP nfai_model_load_duration_seconds Time to load a model."
    );
    let _ = writeln!(o, "# TYPE nfai_model_load_duration_seconds histogram");
    for x in &m.models {
        let id = esc(&x.model);
        let h = &x.counters.load_seconds;
        for (bound, count) in h.cumulative() {
            let _ = writeln!(
                o,
                "nfai_model_load_duration_seconds_bucket{{model=\"{id}\",le=\"{}\"}} {count}",
                le(bound)
            );
        }
        let _ = writeln!(
            o,
            "nfai_model_load_duration_seconds_sum{{model=\"{id}\"}} {}",
            h.sum
        );
        let _ = writeln!(
            o,
            "nfai_model_load_duration_seconds_count{{model=\"{id}\"}} {}",
            h.count
        );
    }
    let _ = writeln!(
        o,
        "# HELP nfai_model_evictions_total Models unloaded, by reason."
    );
    let _ = writeln!(o, "# TYPE nfai_model_evictions_total counter");
    for x in &m.models {
        for reason in EvictionReason::ALL {
            let _ = writeln!(
                o,
                "nfai_model_evictions_total{{model=\"{}\",reason=\"{}\"}} {}",
                esc(&x.model),
                reason.as_str(),
                x.counters.evictions.get(reason)
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP nfai_model_state 1 for the state each model is in."
    );
    let _ = writeln!(o, "# TYPE nfai_model_state gauge");
    for x in &m.models {
        for s in STATES {
            let v = u8::from(x.state == s);
            let _ = writeln!(
                o,
                "nfai_model_state{{model=\"{}\",state=\"{}\"}} {v}",
                esc(&x.model),
                s.as_str()
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP nfai_model_load_waiters Requests waiting for a model to load."
    );
    let _ = writeln!(o, "# TYPE nfai_model_load_waiters gauge");
    for x in &m.models {
        let _ = writeln!(
            o,
            "nfai_model_load_waiters{{model=\"{}\"}} {}",
            esc(&x.model),
            x.waiters
        );
    }
    let _ = writeln!(
        o,
        "# HELP nfai_memory_bytes Memory budget and use per device."
    );
    let _ = writeln!(o, "# TYPE nfai_memory_bytes gauge");
    for d in &m.devices {
        if let Some(b) = d.budget {
            let _ = writeln!(
                o,
                "nfai_memory_bytes{{device=\"{}\",kind=\"budget\"}} {b}",
                d.device
            );
        }
        let _ = writeln!(
            o,
            "nfai_memory_bytes{{device=\"{}\",kind=\"used\"}} {}",
            d.device, d.used
        );
    }
    o
}
