//! `GET /v1/models` and `GET /v1/models/{id}`.

use axum::Json;
use axum::extract::{Path, State};

use crate::catalog::{ModelEntry, ModelKind};
use crate::error::ApiError;
use crate::openai::models::{ModelList, ModelObject};
use crate::state::AppState;

fn object(state: &AppState, e: &ModelEntry) -> ModelObject {
    let registry = state.registry();
    let ready = registry.is_ready(&e.id);
    ModelObject {
        id: e.id.clone(),
        object: "model",
        created: state.started_unix(),
        owned_by: "nfai",
        kind: match e.kind {
            ModelKind::Chat => "chat",
            ModelKind::Embedding => "embedding",
        },
        state: if ready { "ready" } else { "unloaded" },
        aliases: e.aliases.clone(),
        context_length: registry.context_length(&e.id),
    }
}

pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    let data = state.registry().catalog().entries().iter().map(|e| object(&state, e)).collect();
    Json(ModelList { object: "list", data })
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    let entry = state.registry().catalog().resolve(&id).ok_or_else(|| ApiError::model_not_found(&id))?;
    Ok(Json(object(&state, entry)))
}
