//! `GET /health` (liveness) and `GET /ready` (every served model loaded and its engine alive).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let registry = state.registry();
    let mut pending = Vec::new();
    for id in state.served() {
        if !registry.is_ready(id) {
            pending.push(id.clone());
        }
    }
    if pending.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_ready", "pending": pending })))
    }
}
