//! `POST /v1/completions`: one choice per prompt (string, strings, token ids or lists of them).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nfai_inference::{FinishReason, GenerateRequest};

use super::blocking;
use crate::error::ApiError;
use crate::json::OpenAiJson;
use crate::openai::completions::*;
use crate::openai::{Usage, new_id, unix_now};
use crate::state::AppState;
use crate::stream::{self, ChunkWriter};
use crate::validate;

/// OpenAI's limit on prompts per request.
const MAX_PROMPTS: usize = 2048;

pub async fn handler(
    State(state): State<AppState>,
    OpenAiJson(req): OpenAiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    if req.logprobs.is_some() {
        return Err(ApiError::unsupported("logprobs", "logprobs are not supported."));
    }
    if req.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::unsupported("suffix", "suffix (insertion) is not supported."));
    }
    if req.best_of.is_some_and(|b| b != 1) {
        return Err(ApiError::unsupported("best_of", "Only best_of=1 is supported."));
    }
    let model = state.registry().chat(&req.model)?;
    let (sampling, stop) = validate::sampling(&req.sampling, &model.entry.sampling)?;
    let vocab = model.vocab_size;
    let prompts: Vec<Vec<u32>> = match req.prompt {
        PromptInput::Tokens(ids) => vec![validate::token_ids(&ids, vocab, "prompt")?],
        PromptInput::TokenLists(lists) => lists
            .iter()
            .enumerate()
            .map(|(i, ids)| validate::token_ids(ids, vocab, &format!("prompt[{i}]")))
            .collect::<Result<_, _>>()?,
        PromptInput::Text(text) => {
            let model = model.clone();
            vec![blocking(move || encode(&model, &text, "prompt")).await?]
        }
        PromptInput::Texts(texts) => {
            let model = model.clone();
            blocking(move || {
                texts
                    .iter()
                    .enumerate()
                    .map(|(i, t)| encode(&model, t, &format!("prompt[{i}]")))
                    .collect()
            })
            .await?
        }
    };
    if prompts.is_empty() || prompts.len() > MAX_PROMPTS {
        return Err(ApiError::invalid(
            "prompt",
            format!("'prompt' must hold between 1 and {MAX_PROMPTS} prompts, got {}.", prompts.len()),
        ));
    }
    let requested = Some(req.max_tokens.unwrap_or(16));
    let mut receivers = Vec::with_capacity(prompts.len());
    let mut echoes = Vec::new();
    for (i, ids) in prompts.into_iter().enumerate() {
        let param = if i == 0 { "prompt".to_string() } else { format!("prompt[{i}]") };
        let max_new_tokens = validate::max_new_tokens(
            requested,
            "max_tokens",
            ids.len(),
            model.context_length,
            None,
            &param,
        )?;
        if req.echo {
            echoes.push(
                model
                    .engine
                    .tokenizer()
                    .decode(&ids, true)
                    .map_err(|e| ApiError::invalid(param.clone(), e.to_string()))?,
            );
        }
        receivers.push(model.engine.submit(GenerateRequest {
            prompt_ids: ids,
            max_new_tokens,
            sampling: sampling.clone(),
            stop: stop.clone(),
            ignore_eos: req.sampling.ignore_eos,
        })?);
    }
    let id = new_id("cmpl");
    let created = unix_now();
    let model_name = model.entry.id.clone();
    if req.stream {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        let writer = CompletionWriter { id, created, model: model_name, echoes };
        return Ok(stream::sse(writer, receivers, include_usage));
    }
    let mut choices = Vec::with_capacity(receivers.len());
    let mut usage = Usage::new(0, 0);
    for (index, rx) in receivers.into_iter().enumerate() {
        let (text, reason, u) = stream::collect(rx).await?;
        let text = match echoes.get(index) {
            Some(prompt) => format!("{prompt}{text}"),
            None => text,
        };
        usage = Usage::new(usage.prompt_tokens + u.prompt_tokens, usage.completion_tokens + u.completion_tokens);
        choices.push(CompletionChoice { text, index, logprobs: None, finish_reason: Some(reason.as_str()) });
    }
    Ok(Json(Completion {
        id,
        object: "text_completion",
        created,
        model: model_name,
        choices,
        usage: Some(usage),
        system_fingerprint: None,
    })
    .into_response())
}

fn encode(model: &crate::registry::ChatModel, text: &str, param: &str) -> Result<Vec<u32>, ApiError> {
    let ids = model.engine.tokenizer().encode(text, true).map_err(|e| ApiError::invalid(param, e.to_string()))?;
    if ids.is_empty() {
        return Err(ApiError::invalid(param, format!("'{param}' must not be empty.")));
    }
    Ok(ids)
}

struct CompletionWriter {
    id: String,
    created: u64,
    model: String,
    echoes: Vec<String>,
}

impl CompletionWriter {
    fn chunk(&self, choices: Vec<CompletionChoice>, usage: Option<Usage>) -> String {
        let chunk = Completion {
            id: self.id.clone(),
            object: "text_completion",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
            system_fingerprint: None,
        };
        serde_json::to_string(&chunk).unwrap_or_default()
    }

    fn choice(index: usize, text: &str, finish: Option<FinishReason>) -> CompletionChoice {
        CompletionChoice {
            text: text.to_string(),
            index,
            logprobs: None,
            finish_reason: finish.map(FinishReason::as_str),
        }
    }
}

impl ChunkWriter for CompletionWriter {
    fn start(&self, _choices: usize) -> Vec<String> {
        self.echoes.iter().enumerate().map(|(i, p)| self.chunk(vec![Self::choice(i, p, None)], None)).collect()
    }

    fn token(&self, index: usize, text: &str) -> String {
        self.chunk(vec![Self::choice(index, text, None)], None)
    }

    fn finish(&self, index: usize, reason: FinishReason) -> String {
        self.chunk(vec![Self::choice(index, "", Some(reason))], None)
    }

    fn usage(&self, usage: Usage) -> String {
        self.chunk(Vec::new(), Some(usage))
    }
}
