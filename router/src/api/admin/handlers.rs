//! The admin API's handlers: list, load, unload, pin and unpin models, and device memory.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use nfai_cache::{DeviceMemory, LoadOptions, ModelStatus, UnloadOptions};

use super::wire::{AdminDevice, AdminModel, AdminModelList, LoadBody, UnloadBody};
use crate::error::ApiError;
use crate::state::AppState;
use crate::validate;

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

pub async fn list(State(state): State<AppState>) -> Result<Json<AdminModelList>, ApiError> {
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
        crate::api::json::parse(bytes)
    }
}

pub async fn load(
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

pub async fn unload(
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

pub async fn pin(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AdminModel>, ApiError> {
    let id = served_id(&state, &name)?;
    state.registry().cache().pin(&id).await?;
    status_of(&state, &id).await
}

pub async fn unpin(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AdminModel>, ApiError> {
    let id = served_id(&state, &name)?;
    state.registry().cache().unpin(&id).await?;
    status_of(&state, &id).await
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

pub async fn memory(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let devices = state.registry().cache().memory().await?;
    let data: Vec<AdminDevice> = devices.iter().map(admin_device).collect();
    Ok(Json(
        serde_json::json!({ "object": "list", "data": data, "process_rss_bytes": crate::registry::resident_bytes() }),
    ))
}
