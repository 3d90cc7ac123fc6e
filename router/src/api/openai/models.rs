//! `GET /v1/models` and `GET /v1/models/{id}`, with each model's residency as extension fields;
//! a key limited to some models is listed only those.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use nfai_cache::{ModelState, ModelStatus};

use super::wire::models::{ModelList, ModelObject};
use crate::api::gate::lists_model;
use crate::auth::Caller;
use crate::backend::error::BackendError;
use crate::backend::routed::table::RouteEntry;
use crate::catalog::{ModelEntry, ModelKind};
use crate::error::ApiError;
use crate::registry::DEFAULT_CONTEXT;
use crate::state::AppState;

/// Ids of the native models that are loaded and ready.
pub async fn native_ready(state: &AppState) -> HashSet<String> {
    state
        .registry()
        .cache()
        .status()
        .await
        .map(|all| {
            all.into_iter()
                .filter(|s| s.state == ModelState::Ready)
                .map(|s| s.id)
                .collect()
        })
        .unwrap_or_default()
}

/// A route as `/v1/models` lists it.
fn routed_object(r: &RouteEntry, created: u64, native_ready: &HashSet<String>) -> ModelObject {
    ModelObject {
        id: r.config.model.clone(),
        object: "model",
        created,
        owned_by: "nfai",
        kind: r.config.kind,
        state: if r.resident(native_ready) {
            "ready"
        } else {
            "unloaded"
        },
        aliases: r.config.aliases.clone(),
        context_length: None,
    }
}

fn object(state: &AppState, e: &ModelEntry, status: Option<&ModelStatus>) -> ModelObject {
    ModelObject {
        id: e.id.clone(),
        object: "model",
        created: state.started_unix(),
        owned_by: "nfai",
        kind: match e.kind {
            ModelKind::Chat => "chat",
            ModelKind::Embedding => "embedding",
        },
        state: status.map_or("not_served", |s| s.state.as_str()),
        aliases: e.aliases.clone(),
        context_length: match e.kind {
            ModelKind::Chat => Some(e.context_length.unwrap_or(DEFAULT_CONTEXT)),
            ModelKind::Embedding => None,
        },
    }
}

async fn statuses(state: &AppState) -> Result<Vec<ModelStatus>, ApiError> {
    Ok(state.registry().cache().status().await?)
}

pub async fn list(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> Result<Json<ModelList>, ApiError> {
    let st = statuses(&state).await?;
    let mut data: Vec<ModelObject> = state
        .registry()
        .catalog()
        .entries()
        .iter()
        .filter(|e| state.routes().get(&e.id).is_none())
        .map(|e| object(&state, e, st.iter().find(|s| s.id == e.id)))
        .collect();
    let ready = native_ready(&state).await;
    data.extend(
        state
            .routes()
            .routes
            .iter()
            .map(|r| routed_object(r, state.started_unix(), &ready)),
    );
    let caller = caller.map(|Extension(c)| c);
    data.retain(|m| lists_model(&state, caller.as_ref(), &m.id));
    Ok(Json(ModelList {
        object: "list",
        data,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    if let Some(r) = state.routes().get(&id) {
        let ready = native_ready(&state).await;
        return Ok(Json(routed_object(r, state.started_unix(), &ready)));
    }
    let entry = state
        .registry()
        .catalog()
        .resolve(&id)
        .ok_or_else(|| BackendError::ModelNotFound(id.clone()))?;
    let st = statuses(&state).await?;
    Ok(Json(object(
        &state,
        entry,
        st.iter().find(|s| s.id == entry.id),
    )))
}
