//! `GET /v1/models` and `GET /v1/models/{id}`, with each model's residency as extension fields.

use axum::Json;
use axum::extract::{Path, State};
use nfai_cache::ModelStatus;

use crate::catalog::{ModelEntry, ModelKind};
use crate::error::ApiError;
use crate::openai::models::{ModelList, ModelObject};
use crate::registry::DEFAULT_CONTEXT;
use crate::state::AppState;

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

pub async fn list(State(state): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    let st = statuses(&state).await?;
    let mut data: Vec<ModelObject> = state
        .registry()
        .catalog()
        .entries()
        .iter()
        .filter(|e| state.routes().get(&e.id).is_none())
        .map(|e| object(&state, e, st.iter().find(|s| s.id == e.id)))
        .collect();
    data.extend(crate::upstream::table::routed_model_objects(&state).await);
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
        let ready = crate::upstream::table::native_ready(&state).await;
        return Ok(Json(r.model_object(state.started_unix(), &ready)));
    }
    let entry = state
        .registry()
        .catalog()
        .resolve(&id)
        .ok_or_else(|| ApiError::model_not_found(&id))?;
    let st = statuses(&state).await?;
    Ok(Json(object(
        &state,
        entry,
        st.iter().find(|s| s.id == entry.id),
    )))
}
