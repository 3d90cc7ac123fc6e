//! `POST /v1/chat/completions`: renders the chat template, tokenizes, queues, and answers as one
//! JSON body or as SSE chunks.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nfai_inference::{FinishReason, GenerateRequest};

use super::blocking;
use crate::error::ApiError;
use crate::json::OpenAiJson;
use crate::openai::chat::*;
use crate::openai::{Usage, new_id, unix_now};
use crate::state::AppState;
use crate::stream::{self, ChunkWriter};
use crate::validate;

pub async fn handler(
    State(state): State<AppState>,
    OpenAiJson(req): OpenAiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) || req.functions.is_some() {
        return Err(ApiError::unsupported("tools", "Tool calling is not supported by this model."));
    }
    if req.tool_choice.is_some() {
        return Err(ApiError::unsupported("tool_choice", "Tool calling is not supported by this model."));
    }
    if req.logprobs == Some(true) || req.top_logprobs.is_some() {
        return Err(ApiError::unsupported("logprobs", "logprobs are not supported."));
    }
    if let Some(rf) = &req.response_format {
        if rf.kind != "text" {
            return Err(ApiError::unsupported(
                "response_format",
                format!("response_format '{}' is not supported; only 'text'.", rf.kind),
            ));
        }
    }
    let model = state.registry().chat(&req.model)?;
    let (sampling, stop) = validate::sampling(&req.sampling, &model.entry.sampling)?;
    let messages = validate::chat_messages(&req.messages)?;
    let (max_param, max_requested) = match (req.max_completion_tokens, req.max_tokens) {
        (Some(n), _) => ("max_completion_tokens", Some(n)),
        (None, n) => ("max_tokens", n),
    };
    let prompt_ids = {
        let model = model.clone();
        blocking(move || {
            let prompt = model
                .template
                .render(&messages, true)
                .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
            model
                .engine
                .tokenizer()
                .encode(&prompt, true)
                .map_err(|e| ApiError::invalid("messages", e.to_string()))
        })
        .await?
    };
    let max_new_tokens = validate::max_new_tokens(
        max_requested,
        max_param,
        prompt_ids.len(),
        model.context_length,
        model.entry.sampling.max_tokens,
        "messages",
    )?;
    let rx = model.engine.submit(GenerateRequest {
        prompt_ids,
        max_new_tokens,
        sampling,
        stop,
        ignore_eos: req.sampling.ignore_eos,
    })?;
    let id = new_id("chatcmpl");
    let created = unix_now();
    let model_name = model.entry.id.clone();
    if req.stream {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        let writer = ChatWriter { id, created, model: model_name, include_usage };
        return Ok(stream::sse(writer, vec![rx], include_usage));
    }
    let (content, reason, usage) = stream::collect(rx).await?;
    Ok(Json(ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model: model_name,
        choices: vec![ChatChoice {
            index: 0,
            message: ChatMessageOut { role: "assistant", content, refusal: None },
            logprobs: None,
            finish_reason: reason.as_str(),
        }],
        usage: Usage::new(usage.prompt_tokens, usage.completion_tokens),
        system_fingerprint: None,
    })
    .into_response())
}

struct ChatWriter {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl ChatWriter {
    fn chunk(&self, choices: Vec<ChunkChoice<'_>>, usage: Option<Usage>) -> String {
        let chunk = ChatCompletionChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage: self.include_usage.then_some(usage),
            system_fingerprint: None,
        };
        serde_json::to_string(&chunk).unwrap_or_default()
    }

    fn choice(index: usize, delta: Delta<'_>, finish: Option<FinishReason>) -> ChunkChoice<'_> {
        ChunkChoice { index, delta, logprobs: None, finish_reason: finish.map(FinishReason::as_str) }
    }
}

impl ChunkWriter for ChatWriter {
    fn start(&self, choices: usize) -> Vec<String> {
        (0..choices)
            .map(|i| {
                let delta = Delta { role: Some("assistant"), content: Some("") };
                self.chunk(vec![Self::choice(i, delta, None)], None)
            })
            .collect()
    }

    fn token(&self, index: usize, text: &str) -> String {
        let delta = Delta { role: None, content: Some(text) };
        self.chunk(vec![Self::choice(index, delta, None)], None)
    }

    fn finish(&self, index: usize, reason: FinishReason) -> String {
        self.chunk(vec![Self::choice(index, Delta::default(), Some(reason))], None)
    }

    fn usage(&self, usage: Usage) -> String {
        self.chunk(Vec::new(), Some(usage))
    }
}
