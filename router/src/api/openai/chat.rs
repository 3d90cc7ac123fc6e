//! `POST /v1/chat/completions`: validates, hands the request to the model's backend, and answers
//! as one JSON body or as SSE chunks.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use nfai_inference::FinishReason;

use super::stream::{self, ChunkWriter};
use super::tool_calls::{self, HeldText};
use super::wire::chat::*;
use super::wire::{Usage, new_id};
use crate::api::json::{JsonBody, OpenAiJson};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::unix_now;
use crate::validate::structured::{self, ToolMode};
use crate::validate::{self, ChatRequest, FieldError, GenerationOptions};

pub async fn handler(
    State(state): State<AppState>,
    OpenAiJson(req): OpenAiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let route = state.route(&req.model)?;
    if req.functions.is_some() {
        return Err(FieldError::unsupported(
            "functions",
            "The legacy 'functions' field is not supported; use 'tools'.",
        )
        .into());
    }
    if req.logprobs == Some(true) || req.top_logprobs.is_some() {
        return Err(FieldError::unsupported("logprobs", "logprobs are not supported.").into());
    }
    let (tools, tool_output) = structured::tools(
        req.tools.as_deref(),
        req.tool_choice.as_ref(),
        req.parallel_tool_calls,
    )?;
    let format_output = match &req.response_format {
        Some(rf) => structured::response_format(&rf.kind, rf.json_schema.as_ref())?,
        None => None,
    };
    let output = match (tool_output, format_output) {
        (Some(_), Some(_)) => {
            return Err(FieldError::unsupported(
                "response_format",
                "A response_format other than 'text' cannot be combined with tools unless tool_choice is 'none'.",
            )
            .into());
        }
        (t, f) => t.or(f),
    };
    let tool_mode = tools.mode;
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
        .chat(
            &route.model,
            ChatRequest {
                messages,
                options,
                tools,
                output,
            },
        )
        .await?;
    let id = new_id("chatcmpl");
    let created = unix_now();
    if req.stream {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        let held = HeldText::default();
        let events = match tool_mode {
            Some(mode) => tool_calls::hold_calls(generation.events, mode, held.clone()),
            None => generation.events,
        };
        let writer = ChatWriter {
            id,
            created,
            model: route.display,
            include_usage,
            tool_mode,
            held,
        };
        return Ok(stream::sse(writer, vec![events], include_usage));
    }
    let (content, reason, usage) = crate::backend::collect(generation.events).await?;
    let calls = match (tool_mode, reason) {
        (Some(mode), FinishReason::Stop) => tool_calls::parse(mode, &content),
        _ => None,
    };
    Ok(JsonBody(ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model: route.display,
        choices: vec![ChatChoice {
            index: 0,
            finish_reason: if calls.is_some() {
                "tool_calls"
            } else {
                reason.as_str()
            },
            message: ChatMessageOut {
                role: "assistant",
                content: calls.is_none().then_some(content),
                refusal: None,
                tool_calls: calls,
            },
            logprobs: None,
        }],
        usage: Usage::from(usage),
        system_fingerprint: None,
    })
    .into_response())
}

struct ChatWriter {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    /// Set when the answer may be a tool call, whose text `held` keeps until the end.
    tool_mode: Option<ToolMode>,
    held: HeldText,
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

    /// The last chunk of a choice whose text was held back: its tool calls and `tool_calls`, or
    /// the text itself when it is not a whole call.
    fn release(&self, index: usize, mode: ToolMode, text: &str, reason: FinishReason) -> String {
        let calls = match reason {
            FinishReason::Stop => tool_calls::parse(mode, text),
            FinishReason::Length => None,
        };
        let choice = match calls {
            Some(mut calls) => {
                for (i, call) in calls.iter_mut().enumerate() {
                    call.index = Some(i);
                }
                ChunkChoice {
                    index,
                    delta: Delta {
                        tool_calls: Some(calls),
                        ..Delta::default()
                    },
                    logprobs: None,
                    finish_reason: Some("tool_calls"),
                }
            }
            None => {
                let delta = Delta {
                    content: Some(text),
                    ..Delta::default()
                };
                Self::choice(index, delta, Some(reason))
            }
        };
        self.chunk(vec![choice], None)
    }
}

impl ChunkWriter for ChatWriter {
    fn start(&self, choices: usize) -> Vec<String> {
        (0..choices)
            .map(|i| {
                let delta = Delta {
                    role: Some("assistant"),
                    content: Some(""),
                    ..Delta::default()
                };
                self.chunk(vec![Self::choice(i, delta, None)], None)
            })
            .collect()
    }

    fn token(&self, index: usize, text: &str) -> String {
        let delta = Delta {
            role: None,
            content: Some(text),
            ..Delta::default()
        };
        self.chunk(vec![Self::choice(index, delta, None)], None)
    }

    fn finish(&self, index: usize, reason: FinishReason) -> String {
        if let Some(mode) = self.tool_mode
            && let Some(text) = self.held.take()
        {
            return self.release(index, mode, &text, reason);
        }
        self.chunk(
            vec![Self::choice(index, Delta::default(), Some(reason))],
            None,
        )
    }

    fn usage(&self, usage: Usage) -> String {
        self.chunk(Vec::new(), Some(usage))
    }
}
