//! `POST /api/chat` and `POST /api/generate`: NDJSON lines per token and a final line with
//! `done_reason` and counts, or one JSON body with `"stream": false`.

use std::convert::Infallible;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream;
use nfai_inference::{FinishReason, GenerateEvent, Usage};
use serde::Serialize;

use super::extract::{OllamaJson, route};
use super::wire::{self, Counts, ErrorLine, GenerateLine, MessageOut, refuse_unsupported};
use crate::api::json::JsonBody;
use crate::api::openai::tool_calls::{self, HeldText};
use crate::backend::error::BackendError;
use crate::backend::{EventStream, collect};
use crate::error::{ApiError, OllamaError};
use crate::state::AppState;
use crate::time::now_rfc3339;
use crate::validate::structured::{self, ToolMode};
use crate::validate::{
    self, ChatRequest, CompletionRequest, ContentInput, FieldError, MessageInput, Prompt,
};

/// How a line carries text: chat's `message.content` or generate's `response`.
#[derive(Clone)]
struct Shape {
    model: String,
    chat: bool,
    started: Instant,
    /// Set when the answer may be a tool call; its text is held back until the end.
    tool_mode: Option<ToolMode>,
    held: HeldText,
}

impl Shape {
    fn line<'a>(&'a self, text: &'a str, done: bool) -> GenerateLine<'a> {
        GenerateLine {
            model: &self.model,
            created_at: now_rfc3339(),
            message: self.chat.then_some(MessageOut {
                role: "assistant",
                content: text,
                tool_calls: None,
            }),
            response: (!self.chat).then_some(text),
            done,
            done_reason: None,
            counts: None,
        }
    }

    fn done<'a>(&'a self, text: &'a str, reason: FinishReason, usage: Usage) -> GenerateLine<'a> {
        let total = self.started.elapsed().as_nanos() as u64;
        let calls = match (self.tool_mode, reason) {
            (Some(mode), FinishReason::Stop) => tool_calls::parse(mode, text),
            _ => None,
        };
        let message = match calls {
            Some(calls) => Some(MessageOut {
                role: "assistant",
                content: "",
                tool_calls: Some(
                    calls
                        .into_iter()
                        .map(|c| {
                            let arguments: serde_json::Value =
                                serde_json::from_str(&c.function.arguments).unwrap_or_default();
                            serde_json::json!({
                                "function": { "name": c.function.name, "arguments": arguments }
                            })
                        })
                        .collect(),
                ),
            }),
            None => self.line(text, true).message,
        };
        GenerateLine {
            message,
            done_reason: Some(reason.as_str()),
            counts: Some(Counts {
                total_duration: total,
                load_duration: 0,
                prompt_eval_count: usage.prompt_tokens,
                prompt_eval_duration: 0,
                eval_count: usage.completion_tokens,
                eval_duration: total,
            }),
            ..self.line(text, true)
        }
    }

    /// Ollama answers an empty chat or prompt by loading the model.
    fn loaded(&self) -> Response {
        JsonBody(GenerateLine {
            done_reason: Some("load"),
            ..self.line("", true)
        })
        .into_response()
    }
}

fn line(v: &impl Serialize) -> Result<Bytes, Infallible> {
    let mut buf = serde_json::to_vec(v).unwrap_or_default();
    buf.push(b'\n');
    Ok(Bytes::from(buf))
}

/// The NDJSON body: a line per non-empty token, then the final line or an error line.
fn ndjson(shape: Shape, events: EventStream) -> Response {
    let body = stream::unfold(Some((events, shape)), |st| async move {
        let (mut events, shape) = st?;
        loop {
            match events.next().await {
                Some(GenerateEvent::Token { text, .. }) if text.is_empty() => continue,
                Some(GenerateEvent::Token { text, .. }) => {
                    let bytes = line(&shape.line(&text, false));
                    return Some((bytes, Some((events, shape))));
                }
                Some(GenerateEvent::Finished {
                    reason,
                    usage,
                    text,
                }) => {
                    let text = shape.held.take().unwrap_or(text);
                    return Some((line(&shape.done(&text, reason, usage)), None));
                }
                Some(GenerateEvent::Failed(e)) => {
                    let e = ApiError::from(e);
                    return Some((line(&ErrorLine { error: &e.message }), None));
                }
                None => {
                    let error = "The model stopped before finishing the request.";
                    return Some((line(&ErrorLine { error }), None));
                }
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn respond(shape: Shape, stream: bool, events: EventStream) -> Result<Response, OllamaError> {
    if stream {
        return Ok(ndjson(shape, events));
    }
    let (text, reason, usage) = collect(events).await?;
    Ok(JsonBody(shape.done(&text, reason, usage)).into_response())
}

pub async fn chat(
    State(state): State<AppState>,
    OllamaJson(req): OllamaJson<wire::ChatRequest>,
) -> Result<Response, OllamaError> {
    let started = Instant::now();
    let r = route(&state, &req.model)?;
    let images = req
        .messages
        .iter()
        .any(|m| m.images.as_ref().is_some_and(|i| !i.is_empty()));
    refuse_unsupported(images)?;
    let (tools, tool_output) = structured::tools(req.tools.as_deref(), None, None)?;
    let format_output = match &req.format {
        Some(f) => structured::ollama_format(f)?,
        None => None,
    };
    let output = match (tool_output, format_output) {
        (Some(_), Some(_)) => {
            return Err(FieldError::unsupported(
                "format",
                "'format' cannot be combined with 'tools'.",
            )
            .into());
        }
        (t, f) => t.or(f),
    };
    let shape = Shape {
        model: req.model.clone(),
        chat: true,
        started,
        tool_mode: tools.mode,
        held: HeldText::default(),
    };
    if req.messages.is_empty() {
        return Ok(shape.loaded());
    }
    let messages = validate::chat_messages(req.messages.into_iter().map(Into::into).collect())?;
    let options = req
        .options
        .generation(req.keep_alive.as_ref(), req.stream)?;
    let generation = r
        .backend
        .chat(
            &r.model,
            ChatRequest {
                messages,
                options,
                tools,
                output,
            },
        )
        .await?;
    let events = match shape.tool_mode {
        Some(mode) if req.stream => {
            tool_calls::hold_calls(generation.events, mode, shape.held.clone())
        }
        _ => generation.events,
    };
    respond(shape, req.stream, events).await
}

pub async fn generate(
    State(state): State<AppState>,
    OllamaJson(req): OllamaJson<wire::GenerateRequest>,
) -> Result<Response, OllamaError> {
    let started = Instant::now();
    let r = route(&state, &req.model)?;
    refuse_unsupported(req.images.as_ref().is_some_and(|i| !i.is_empty()))?;
    let output = match &req.format {
        Some(f) => structured::ollama_format(f)?,
        None => None,
    };
    if output.is_some() && req.raw {
        return Err(FieldError::unsupported(
            "format",
            "'format' is not supported with 'raw' prompts; leave out 'raw'.",
        )
        .into());
    }
    if req.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(
            FieldError::unsupported("suffix", "suffix (insertion) is not supported.").into(),
        );
    }
    let shape = Shape {
        model: req.model.clone(),
        chat: false,
        started,
        tool_mode: None,
        held: HeldText::default(),
    };
    if req.prompt.is_empty() {
        return Ok(shape.loaded());
    }
    let options = req
        .options
        .generation(req.keep_alive.as_ref(), req.stream)?;
    let events = if req.raw {
        let creq = CompletionRequest {
            prompts: vec![Prompt::Text(req.prompt)],
            options,
            echo: false,
        };
        let mut gens = r.backend.complete(&r.model, creq).await?;
        gens.pop()
            .ok_or_else(|| BackendError::Internal("no generation".into()))?
            .events
    } else {
        let mut messages = Vec::new();
        if let Some(system) = req.system.filter(|s| !s.is_empty()) {
            messages.push(MessageInput {
                role: "system".into(),
                content: ContentInput::Text(system),
            });
        }
        messages.push(MessageInput {
            role: "user".into(),
            content: ContentInput::Text(req.prompt),
        });
        let messages = validate::chat_messages(messages)?;
        r.backend
            .chat(
                &r.model,
                ChatRequest {
                    messages,
                    options,
                    output,
                    ..ChatRequest::default()
                },
            )
            .await?
            .events
    };
    respond(shape, req.stream, events).await
}
