//! `POST /v1/embeddings`: strings or token ids in, unit vectors out (floats or base64).

use axum::extract::State;
use base64::Engine as _;

use super::completions::prompts;
use super::wire::completions::PromptInput;
use super::wire::embeddings::*;
use crate::api::json::{JsonBody, OpenAiJson};
use crate::error::ApiError;
use crate::state::AppState;
use crate::validate::{self, EmbeddingRequest as Valid, FieldError};

pub async fn handler(
    State(state): State<AppState>,
    OpenAiJson(req): OpenAiJson<EmbeddingRequest>,
) -> Result<JsonBody<EmbeddingResponse>, ApiError> {
    let route = state.route(&req.model)?;
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(FieldError::invalid(
                "encoding_format",
                format!("'encoding_format' must be 'float' or 'base64', got '{other}'."),
            )
            .into());
        }
    };
    let dimensions = match req.dimensions {
        Some(d) if d < 1 => {
            return Err(FieldError::invalid(
                "dimensions",
                format!("'dimensions' must be at least 1, got {d}."),
            )
            .into());
        }
        d => d.map(|d| usize::try_from(d).unwrap_or(usize::MAX)),
    };
    let input = match req.input {
        EmbeddingInput::Text(t) => PromptInput::Text(t),
        EmbeddingInput::Texts(t) => PromptInput::Texts(t),
        EmbeddingInput::Tokens(t) => PromptInput::Tokens(t),
        EmbeddingInput::TokenLists(t) => PromptInput::TokenLists(t),
    };
    let input_kind = match req.input_type.as_deref() {
        None => nfai_models::InputKind::Query,
        Some(t) => nfai_models::InputKind::parse(t).ok_or_else(|| {
            FieldError::invalid(
                "input_type",
                format!("'input_type' must be 'query', 'passage' or 'document', got '{t}'."),
            )
        })?,
    };
    let inputs = validate::embedding_inputs(prompts(input, "input")?, "input")?;
    let keep_alive = validate::keep_alive(req.keep_alive.as_ref())?;
    let out = route
        .backend
        .embed(
            &route.model,
            Valid {
                inputs,
                dimensions,
                input_kind,
                keep_alive,
                deadline: crate::context::deadline(),
            },
        )
        .await?;
    let data = out
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| EmbeddingData {
            object: "embedding",
            index,
            embedding: if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                EmbeddingVector::Float(v)
            },
        })
        .collect();
    let tokens = out.prompt_tokens;
    Ok(JsonBody(EmbeddingResponse {
        object: "list",
        data,
        model: route.display,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}
