//! `POST /v1/chat/completions`: validates, hands the request to the model's backend, and answers
//! as one JSON body or as SSE chunks.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use nfai_inference::FinishReason;

use super::stream::{self, ChunkWriter};
use super::wire::chat::*;
use super::wire::{Usage, new_id};
use crate::api::json::{JsonBody, OpenAiJson};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::unix_now;
use crate::validate::{self, ChatRequest, FieldError, GenerationOptions};

pub async fn handler(
    State(state): State<AppState>,
    OpenAiJson(req): OpenAiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let route = state.route(&req.model)?;
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) || req.functions.is_some() {
        return Err(FieldError::unsupported(
            "tools",
            "Tool calling is not supported by this model.",
        )
        .into());
    }
    if req.tool_choice.is_some() {
        return Err(FieldError::unsupported(
            "tool_choice",
            "Tool calling is not supported by this model.",
        )
        .into());
    }
    if req.logprobs == Some(true) || req.top_logprobs.is_some() {
        return Err(FieldError::unsupported("logprobs", "logprobs are not supported.").into());
    }
    if let Some(rf) = &req.response_format
        && rf.kind != "text"
    {
        return Err(FieldError::unsupported(
            "response_format",
            format!(
                "response_format '{}' is not supported; only 'text'.",
                rf.kind
            ),
        )
        .into());
    }
    let (sampling, stop) = validate::sampling(&req.sampling.input())?;
    let messages = validate::chat_messages(req.messages.into_iter().map(Into::into).collect())?;
    let (max_tokens_param, raw_max) = match (req.max_completion_tokens, req.max_tokens) {
        (Some(n), _) => ("max_completion_tokens", Some(n)),
        (None, n) => ("max_tokens", n),
    };
    let options = GenerationOptions {
        sampling,
        stop,
        max_tokens: validate::max_tokens(raw_max, max_tokens_param)?,
        max_tokens_param,
        ignore_eos: req.sampling.ignore_eos,
        keep_alive: validate::keep_alive(req.keep_alive.as_ref())?,
        stream: req.stream,
        deadline: crate::context::deadline(),
    };
    let generation = route
        .backend
        .chat(&route.model, ChatRequest { messages, options })
        .await?;
    let id = new_id("chatcmpl");
    let created = unix_now();
    if req.stream {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        let writer = ChatWriter {
            id,
            created,
            model: route.display,
            include_usage,
        };
        return Ok(stream::sse(writer, vec![generation.events], include_usage));
    }
    let (content, reason, usage) = crate::backend::collect(generation.events).await?;
    Ok(JsonBody(ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model: route.display,
        choices: vec![ChatChoice {
            index: 0,
            message: ChatMessageOut {
                role: "assistant",
                content,
                refusal: None,
            },
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
        ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason: finish.map(FinishReason::as_str),
        }
    }
}

impl ChunkWriter for ChatWriter {
    fn start(&self, choices: usize) -> Vec<String> {
        (0..choices)
            .map(|i| {
                let delta = Delta {
                    role: Some("assistant"),
                    content: Some(""),
                };
                self.chunk(vec![Self::choice(i, delta, None)], None)
            })
            .collect()
    }

    fn token(&self, index: usize, text: &str) -> String {
        let delta = Delta {
            role: None,
            content: Some(text),
        };
        self.chunk(vec![Self::choice(index, delta, None)], None)
    }

    fn finish(&self, index: usize, reason: FinishReason) -> String {
        self.chunk(
            vec![Self::choice(index, Delta::default(), Some(reason))],
            None,
        )
    }

    fn usage(&self, usage: Usage) -> String {
        self.chunk(Vec::new(), Some(usage))
    }
}
