//! `GET /health` (liveness: the process serves) and `GET /ready` (readiness, for a load
//! balancer).
//!
//! `/ready` answers 503 until every preloaded model has been Ready once; from then on it answers
//! 200 for as long as the model cache runs and the engines of the loaded preloaded models are
//! alive. A preloaded model never expires by keep-alive; if memory pressure evicts one, the
//! replica stays ready and loads it again on demand. A preloaded model whose reload failed, or
//! whose engine died, makes it 503 again.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use nfai_cache::{ModelState, ModelStatus};
use serde_json::{Value, json};

use crate::error::readiness;
use crate::state::AppState;

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Why a preloaded model keeps the replica from being ready, if it does.
fn blocking_reason(state: &AppState, st: &ModelStatus, started: bool) -> Option<&'static str> {
    match st.state {
        ModelState::Failed => Some("failed"),
        ModelState::Ready => match state.registry().engine_alive(&st.id) {
            Some(false) => Some("engine_stopped"),
            _ => None,
        },
        // Not yet loaded once: still starting.
        _ if !started => Some(st.state.as_str()),
        // Evicted, or loading again on demand.
        _ => None,
    }
}

pub async fn ready(State(state): State<AppState>) -> Response {
    let statuses = match state.registry().cache().status().await {
        Ok(s) => s,
        Err(e) => {
            return readiness(
                false,
                json!({ "status": "not_ready", "error": e.to_string() }),
            );
        }
    };
    let started = state.preloads_done();
    let pending: Vec<Value> = state
        .preload()
        .iter()
        .filter_map(|id| {
            let st = statuses.iter().find(|s| &s.id == id)?;
            let why = blocking_reason(&state, st, started)?;
            Some(json!({
                "model": id,
                "state": st.state.as_str(),
                "reason": why,
                "last_error": st.last_error,
            }))
        })
        .collect();
    if !pending.is_empty() {
        return readiness(false, json!({ "status": "not_ready", "pending": pending }));
    }
    state.mark_preloads_done();
    readiness(true, json!({ "status": "ready" }))
}
