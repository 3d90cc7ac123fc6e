//! `GET /metrics`: Prometheus text exposition of the model cache.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use nfai_cache::{CacheMetrics, EvictionReason, ModelState};

use crate::error::ApiError;
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
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        format!("{}{}", render(&m), state.limiter().render_metrics()),
    ))
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
