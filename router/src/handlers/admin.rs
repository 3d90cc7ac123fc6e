//! The admin API under `/admin`: model residency (load, unload, pin) and memory, guarded by the
//! admin token (`Authorization: Bearer <token>`). Without a configured token every call is 401.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use nfai_cache::{DeviceMemory, LoadOptions, ModelStatus, UnloadOptions};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;
use crate::validate;

/// The admin routes, with the token check.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/models", get(list))
        .route("/admin/models/{id}/load", post(load))
        .route("/admin/models/{id}/unload", post(unload))
        .route("/admin/models/{id}/pin", post(pin))
        .route("/admin/models/{id}/unpin", post(unpin))
        .route("/admin/memory", get(memory))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// Compares without an early exit, so timing does not reveal how much of a guess matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(token) = state.admin_token() else {
        return Err(ApiError::unauthorized(
            "The admin API is disabled: start nfai with NFAI_ADMIN_TOKEN or NFAI_ADMIN_TOKEN_FILE.",
        ));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same(given.as_bytes(), token.expose().as_bytes()) {
        return Err(ApiError::unauthorized(
            "Missing or wrong admin token (Authorization: Bearer …).",
        ));
    }
    Ok(next.run(req).await)
}

/// One model as the admin API shows it. Times are Unix seconds.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct AdminModel {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub device: String,
    pub estimated_bytes: Option<u64>,
    pub actual_bytes: Option<u64>,
    pub pinned: bool,
    /// `-1` forever, else a duration such as `5m`.
    pub keep_alive: String,
    pub expires_at: Option<f64>,
    pub last_used_at: Option<f64>,
    pub loaded_at: Option<f64>,
    pub load_duration_ms: Option<u64>,
    pub in_flight: usize,
    pub requests_served: u64,
    pub waiters: usize,
    pub last_error: Option<String>,
}

fn unix(t: Option<SystemTime>) -> Option<f64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

fn admin_model(state: &AppState, s: &ModelStatus) -> AdminModel {
    let kind = state
        .registry()
        .catalog()
        .resolve(&s.id)
        .map(|e| format!("{:?}", e.kind).to_lowercase())
        .unwrap_or_default();
    AdminModel {
        id: s.id.clone(),
        kind,
        state: s.state.as_str().to_string(),
        device: s.device.to_string(),
        estimated_bytes: s.estimated_bytes,
        actual_bytes: s.actual_bytes,
        pinned: s.pinned,
        keep_alive: s.keep_alive.to_string(),
        expires_at: unix(s.expires_at),
        last_used_at: unix(s.last_used_at),
        loaded_at: unix(s.loaded_at),
        load_duration_ms: s.load_duration.map(|d| d.as_millis() as u64),
        in_flight: s.in_flight,
        requests_served: s.requests_served,
        waiters: s.waiters,
        last_error: s.last_error.clone(),
    }
}

#[derive(Debug, Serialize)]
pub struct AdminModelList {
    pub object: &'static str,
    pub data: Vec<AdminModel>,
}

async fn list(State(state): State<AppState>) -> Result<Json<AdminModelList>, ApiError> {
    let statuses = state.registry().cache().status().await?;
    Ok(Json(AdminModelList {
        object: "list",
        data: statuses.iter().map(|s| admin_model(&state, s)).collect(),
    }))
}

/// The served model's id for `name` (id or alias); 404 otherwise.
fn served_id(state: &AppState, name: &str) -> Result<String, ApiError> {
    let entry = state
        .registry()
        .catalog()
        .resolve(name)
        .ok_or_else(|| ApiError::model_not_found(name))?;
    if !state.registry().cache().contains(&entry.id) {
        return Err(ApiError::model_not_found(name));
    }
    Ok(entry.id.clone())
}

async fn status_of(state: &AppState, id: &str) -> Result<Json<AdminModel>, ApiError> {
    let statuses = state.registry().cache().status().await?;
    let s = statuses
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiError::model_not_found(id))?;
    Ok(Json(admin_model(state, s)))
}

/// An optional JSON body: empty means all defaults.
fn body<T: serde::de::DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        crate::json::parse(bytes)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadBody {
    keep_alive: Option<serde_json::Value>,
    #[serde(default)]
    pin: bool,
    device: Option<String>,
}

async fn load(
    State(state): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<AdminModel>, ApiError> {
    let id = served_id(&state, &name)?;
    let b: LoadBody = body(&bytes)?;
    if let Some(device) = &b.device {
        let configured = state
            .registry()
            .catalog()
            .resolve(&id)
            .map(|e| e.device.clone())
            .unwrap_or_default();
        if device != &configured {
            return Err(ApiError::unsupported(
                "device",
                format!(
                    "Model `{id}` is placed on {configured} by the catalog; change `device` there to move it."
                ),
            ));
        }
    }
    let keep_alive = validate::keep_alive(b.keep_alive.as_ref())?;
    state
        .registry()
        .cache()
        .load(
            &id,
            LoadOptions {
                keep_alive,
                pin: b.pin,
            },
        )
        .await?;
    status_of(&state, &id).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnloadBody {
    #[serde(default)]
    force: bool,
    timeout_secs: Option<f64>,
}

async fn unload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<AdminModel>, ApiError> {
    let id = served_id(&state, &name)?;
    let b: UnloadBody = body(&bytes)?;
    let timeout = match b.timeout_secs {
        Some(t) if !(t.is_finite() && t >= 0.0) => {
            return Err(ApiError::invalid(
                "timeout_secs",
                "'timeout_secs' must be a non-negative number.",
            ));
        }
        Some(t) => Duration::from_secs_f64(t.min(3600.0)),
        None => UnloadOptions::default().timeout,
    };
    state
        .registry()
        .cache()
        .unload(
            &id,
            UnloadOptions {
                force: b.force,
                timeout,
            },
        )
        .await?;
    status_of(&state, &id).await
}

async fn pin(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AdminModel>, ApiError> {
    let id = served_id(&state, &name)?;
    state.registry().cache().pin(&id).await?;
    status_of(&state, &id).await
}

async fn unpin(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AdminModel>, ApiError> {
    let id = served_id(&state, &name)?;
    state.registry().cache().unpin(&id).await?;
    status_of(&state, &id).await
}

/// One device as the admin API shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct AdminDevice {
    pub device: String,
    pub budget_bytes: Option<u64>,
    pub used_bytes: u64,
    pub free_bytes: Option<u64>,
    pub resident: Vec<String>,
}

fn admin_device(d: &DeviceMemory) -> AdminDevice {
    AdminDevice {
        device: d.device.to_string(),
        budget_bytes: d.budget,
        used_bytes: d.used,
        free_bytes: d.free,
        resident: d.resident.clone(),
    }
}

async fn memory(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let devices = state.registry().cache().memory().await?;
    let data: Vec<AdminDevice> = devices.iter().map(admin_device).collect();
    Ok(Json(
        serde_json::json!({ "object": "list", "data": data, "process_rss_bytes": crate::registry::resident_bytes() }),
    ))
}
