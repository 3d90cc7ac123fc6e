//! `POST /v1/embeddings`: strings or token ids in, unit vectors out (floats or base64).

use axum::extract::State;
use axum::Json;
use base64::Engine as _;

use super::blocking;
use crate::error::ApiError;
use crate::json::OpenAiJson;
use crate::openai::embeddings::*;
use crate::state::AppState;
use crate::validate;

/// OpenAI's limit on inputs per request.
const MAX_INPUTS: usize = 2048;

pub async fn handler(
    State(state): State<AppState>,
    OpenAiJson(req): OpenAiJson<EmbeddingRequest>,
) -> Result<Json<EmbeddingResponse>, ApiError> {
    let model = state.registry().embedding(&req.model)?;
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("'encoding_format' must be 'float' or 'base64', got '{other}'."),
            ));
        }
    };
    let dim = model.embedder.dim();
    if let Some(d) = req.dimensions {
        if usize::try_from(d).ok() != Some(dim) {
            return Err(ApiError::unsupported(
                "dimensions",
                format!("This model makes {dim}-dimensional vectors; 'dimensions' must be {dim} or absent."),
            ));
        }
    }
    let max = model.embedder.max_tokens();
    let vocab = model.embedder.tokenizer().vocab_size();
    let truncate = |mut ids: Vec<u32>| {
        ids.truncate(max);
        ids
    };
    let inputs: Vec<Vec<u32>> = match req.input {
        EmbeddingInput::Tokens(ids) => vec![truncate(validate::token_ids(&ids, vocab, "input")?)],
        EmbeddingInput::TokenLists(lists) => {
            check_count(lists.len())?;
            lists
                .iter()
                .enumerate()
                .map(|(i, ids)| validate::token_ids(ids, vocab, &format!("input[{i}]")).map(truncate))
                .collect::<Result<_, _>>()?
        }
        EmbeddingInput::Text(text) => {
            let m = model.clone();
            vec![blocking(move || tokenize(&m, &text, "input")).await?]
        }
        EmbeddingInput::Texts(texts) => {
            check_count(texts.len())?;
            let m = model.clone();
            blocking(move || {
                texts.iter().enumerate().map(|(i, t)| tokenize(&m, t, &format!("input[{i}]"))).collect()
            })
            .await?
        }
    };
    let tokens: usize = inputs.iter().map(Vec::len).sum();
    let vectors = model
        .engine
        .submit(inputs)?
        .await
        .map_err(|_| ApiError::unavailable("The embedding engine stopped before answering."))??;
    let data = vectors
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
    Ok(Json(EmbeddingResponse {
        object: "list",
        data,
        model: model.entry.id.clone(),
        usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
    }))
}

fn check_count(n: usize) -> Result<(), ApiError> {
    if n == 0 || n > MAX_INPUTS {
        return Err(ApiError::invalid(
            "input",
            format!("'input' must hold between 1 and {MAX_INPUTS} items, got {n}."),
        ));
    }
    Ok(())
}

fn tokenize(model: &crate::registry::EmbedModel, text: &str, param: &str) -> Result<Vec<u32>, ApiError> {
    if text.is_empty() {
        return Err(ApiError::invalid(param, format!("'{param}' must not be an empty string.")));
    }
    model.embedder.tokenize(text).map_err(|e| ApiError::invalid(param, e.to_string()))
}
