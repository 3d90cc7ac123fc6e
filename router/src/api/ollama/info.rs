//! `POST /api/embed`, `POST /api/embeddings` (older), `GET /api/tags`, `GET /api/ps`,
//! and `GET /api/version`.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use nfai_cache::{ModelState, ModelStatus};

use super::extract::{OllamaJson, route};
use super::wire::{
    Details, EmbedInput, EmbedRequest, EmbedResponse, EmbeddingsRequest, EmbeddingsResponse,
    ModelList, PsModel, TagModel, Version,
};
use crate::api::gate::lists_model;
use crate::api::json::JsonBody;
use crate::auth::Caller;
use crate::catalog::{ModelFormat, ModelKind};
use crate::error::OllamaError;
use crate::state::AppState;
use crate::time::rfc3339;
use crate::validate::{EmbeddingRequest, FieldError, Prompt};

/// The Ollama API version whose wire format these routes answer.
pub const OLLAMA_API_VERSION: &str = "0.9.0";

pub async fn embed(
    State(state): State<AppState>,
    OllamaJson(req): OllamaJson<EmbedRequest>,
) -> Result<Json<EmbedResponse>, OllamaError> {
    let started = Instant::now();
    let r = route(&state, &req.model)?;
    let inputs: Vec<String> = match req.input {
        EmbedInput::One(s) => vec![s],
        EmbedInput::Many(v) => v,
    };
    if inputs.is_empty() || inputs.iter().any(String::is_empty) {
        return Err(FieldError::invalid("input", "'input' must hold non-empty texts.").into());
    }
    let ereq = EmbeddingRequest {
        inputs: inputs.into_iter().map(Prompt::Text).collect(),
        dimensions: req.dimensions,
        input_kind: nfai_models::InputKind::Query,
        keep_alive: super::wire::keep_alive(req.keep_alive.as_ref())?,
        deadline: crate::context::deadline(),
    };
    let out = r.backend.embed(&r.model, ereq).await?;
    Ok(Json(EmbedResponse {
        model: req.model,
        embeddings: out.vectors,
        total_duration: started.elapsed().as_nanos() as u64,
        load_duration: 0,
        prompt_eval_count: out.prompt_tokens,
    }))
}

pub async fn embeddings(
    State(state): State<AppState>,
    OllamaJson(req): OllamaJson<EmbeddingsRequest>,
) -> Result<Json<EmbeddingsResponse>, OllamaError> {
    let r = route(&state, &req.model)?;
    if req.prompt.is_empty() {
        return Ok(Json(EmbeddingsResponse {
            embedding: Vec::new(),
        }));
    }
    let ereq = EmbeddingRequest {
        inputs: vec![Prompt::Text(req.prompt)],
        dimensions: None,
        input_kind: nfai_models::InputKind::Query,
        keep_alive: super::wire::keep_alive(req.keep_alive.as_ref())?,
        deadline: crate::context::deadline(),
    };
    let mut out = r.backend.embed(&r.model, ereq).await?;
    Ok(Json(EmbeddingsResponse {
        embedding: out.vectors.pop().unwrap_or_default(),
    }))
}

struct Listed {
    name: String,
    format: &'static str,
    family: &'static str,
    resident: bool,
    expires_at: Option<std::time::SystemTime>,
    context_length: Option<usize>,
}

/// Catalog models and routed names, with whether each is resident somewhere.
/// The models `caller` may see (all of them without a key limited to some).
async fn listed(state: &AppState, caller: Option<Extension<Caller>>) -> Vec<Listed> {
    let registry = state.registry();
    let statuses: HashMap<String, ModelStatus> = registry
        .cache()
        .status()
        .await
        .map(|all| all.into_iter().map(|s| (s.id.clone(), s)).collect())
        .unwrap_or_default();
    let ready: HashSet<String> = statuses
        .values()
        .filter(|s| s.state == ModelState::Ready)
        .map(|s| s.id.clone())
        .collect();
    let mut out: Vec<Listed> = registry
        .catalog()
        .entries()
        .iter()
        .filter(|e| state.routes().get(&e.id).is_none())
        .map(|e| Listed {
            name: e.id.clone(),
            format: match e.format {
                ModelFormat::Gguf => "gguf",
                ModelFormat::Bert => "safetensors",
                ModelFormat::E5 => "e5s1",
            },
            family: match e.kind {
                ModelKind::Chat => "chat",
                ModelKind::Embedding => "embedding",
            },
            resident: ready.contains(&e.id),
            expires_at: statuses.get(&e.id).and_then(|s| s.expires_at),
            context_length: e.context_length,
        })
        .collect();
    for r in &state.routes().routes {
        out.push(Listed {
            name: r.config.model.clone(),
            format: "",
            family: r.config.kind,
            resident: r.resident(&ready),
            expires_at: None,
            context_length: None,
        });
    }
    let caller = caller.map(|Extension(c)| c);
    out.retain(|l| lists_model(state, caller.as_ref(), &l.name));
    out
}

fn details(l: &Listed) -> Details<'_> {
    Details::new(l.format, l.family, "", "")
}

pub async fn tags(State(state): State<AppState>, caller: Option<Extension<Caller>>) -> Response {
    let modified = rfc3339(u128::from(state.started_unix()) * 1_000_000_000);
    let listed = listed(&state, caller).await;
    let models = listed
        .iter()
        .map(|l| TagModel {
            name: &l.name,
            model: &l.name,
            modified_at: &modified,
            size: 0,
            digest: "",
            details: details(l),
        })
        .collect();
    JsonBody(ModelList { models }).into_response()
}

pub async fn ps(State(state): State<AppState>, caller: Option<Extension<Caller>>) -> Response {
    // Models without an idle expiry (leased, pinned, preloaded, kept forever) report one far
    // ahead.
    let far = std::time::SystemTime::now() + std::time::Duration::from_secs(365 * 86_400);
    let listed = listed(&state, caller).await;
    let models = listed
        .iter()
        .filter(|l| l.resident)
        .map(|l| PsModel {
            name: &l.name,
            model: &l.name,
            size: 0,
            digest: "",
            details: details(l),
            expires_at: rfc3339(
                l.expires_at
                    .unwrap_or(far)
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            ),
            size_vram: 0,
            context_length: l.context_length,
        })
        .collect();
    JsonBody(ModelList { models }).into_response()
}

pub async fn version() -> Json<Version> {
    Json(Version {
        version: OLLAMA_API_VERSION,
    })
}
