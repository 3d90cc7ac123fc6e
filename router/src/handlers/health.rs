//! `GET /health` (liveness: the process serves) and `GET /ready` (every preloaded model is
//! Ready).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use nfai_cache::ModelState;
use serde_json::{Value, json};

use crate::state::AppState;

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let statuses = match state.registry().cache().status().await {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not_ready", "error": e.to_string() })),
            );
        }
    };
    let pending: Vec<Value> = state
        .preload()
        .iter()
        .filter_map(|id| {
            let st = statuses.iter().find(|s| &s.id == id)?;
            (st.state != ModelState::Ready).then(
                || json!({ "model": id, "state": st.state.as_str(), "last_error": st.last_error }),
            )
        })
        .collect();
    if pending.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "pending": pending })),
        )
    }
}
