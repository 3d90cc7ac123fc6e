//! `POST /api/chat` and `POST /api/generate`: NDJSON lines per token and a final line with
//! `done_reason` and counts, or one JSON body with `"stream": false`.

use std::convert::Infallible;
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream;
use nfai_inference::{FinishReason, GenerateEvent, Usage};
use serde_json::{Value, json};

use super::wire::{self, refuse_unsupported};
use super::{OllamaError, OllamaJson, now_rfc3339, route};
use crate::backend::{ChatRequest, CompletionRequest, EventStream, Prompt};
use crate::error::ApiError;
use crate::openai::chat::{ChatMessageIn, MessageContent};
use crate::state::AppState;

/// How a line carries text: chat's `message.content` or generate's `response`.
#[derive(Clone)]
struct Shape {
    model: String,
    chat: bool,
    started: Instant,
}

impl Shape {
    fn text(&self, text: &str, done: bool) -> Value {
        let mut v = json!({ "model": self.model, "created_at": now_rfc3339() });
        if self.chat {
            v["message"] = json!({ "role": "assistant", "content": text });
        } else {
            v["response"] = json!(text);
        }
        v["done"] = json!(done);
        v
    }

    fn done(&self, text: &str, reason: FinishReason, usage: Usage) -> Value {
        let mut v = self.text(text, true);
        let total = self.started.elapsed().as_nanos() as u64;
        v["done_reason"] = json!(reason.as_str());
        v["total_duration"] = json!(total);
        v["load_duration"] = json!(0);
        v["prompt_eval_count"] = json!(usage.prompt_tokens);
        v["prompt_eval_duration"] = json!(0);
        v["eval_count"] = json!(usage.completion_tokens);
        v["eval_duration"] = json!(total);
        v
    }
}

fn line(v: &Value) -> Result<Bytes, Infallible> {
    let mut s = v.to_string();
    s.push('\n');
    Ok(Bytes::from(s))
}

/// The NDJSON body: a line per non-empty token, then the final line or an error line.
fn ndjson(shape: Shape, events: EventStream) -> Response {
    let body = stream::unfold(Some((events, shape)), |st| async move {
        let (mut events, shape) = st?;
        loop {
            match events.next().await {
                Some(GenerateEvent::Token { text, .. }) if text.is_empty() => continue,
                Some(GenerateEvent::Token { text, .. }) => {
                    return Some((line(&shape.text(&text, false)), Some((events, shape))));
                }
                Some(GenerateEvent::Finished {
                    reason,
                    usage,
                    text,
                }) => {
                    return Some((line(&shape.done(&text, reason, usage)), None));
                }
                Some(GenerateEvent::Failed(e)) => {
                    return Some((line(&json!({ "error": ApiError::from(e).message })), None));
                }
                None => {
                    let e = json!({ "error": "The model stopped before finishing the request." });
                    return Some((line(&e), None));
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
    let (text, reason, usage) = crate::stream::collect(events).await?;
    Ok(Json(shape.done(&text, reason, usage)).into_response())
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
    refuse_unsupported(
        &req.format,
        images,
        req.tools.as_ref().is_some_and(|t| !t.is_empty()),
    )?;
    let shape = Shape {
        model: req.model.clone(),
        chat: true,
        started,
    };
    if req.messages.is_empty() {
        // Ollama answers an empty chat by loading the model.
        let mut v = shape.text("", true);
        v["done_reason"] = json!("load");
        return Ok(Json(v).into_response());
    }
    let messages: Vec<ChatMessageIn> = req
        .messages
        .into_iter()
        .map(|m| ChatMessageIn {
            role: m.role,
            content: Some(MessageContent::Text(m.content)),
            name: None,
        })
        .collect();
    let messages = crate::validate::chat_messages(&messages)?;
    let options = req
        .options
        .generation(req.keep_alive.as_ref(), req.stream)?;
    let generation = r
        .backend
        .chat(&r.model, ChatRequest { messages, options })
        .await?;
    respond(shape, req.stream, generation.events).await
}

pub async fn generate(
    State(state): State<AppState>,
    OllamaJson(req): OllamaJson<wire::GenerateRequest>,
) -> Result<Response, OllamaError> {
    let started = Instant::now();
    let r = route(&state, &req.model)?;
    refuse_unsupported(
        &req.format,
        req.images.as_ref().is_some_and(|i| !i.is_empty()),
        false,
    )?;
    if req.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::unsupported("suffix", "suffix (insertion) is not supported.").into());
    }
    let shape = Shape {
        model: req.model.clone(),
        chat: false,
        started,
    };
    if req.prompt.is_empty() {
        let mut v = shape.text("", true);
        v["done_reason"] = json!("load");
        return Ok(Json(v).into_response());
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
            .ok_or_else(|| ApiError::internal("no generation"))?
            .events
    } else {
        let mut messages = Vec::new();
        if let Some(system) = req.system.filter(|s| !s.is_empty()) {
            messages.push(ChatMessageIn {
                role: "system".into(),
                content: Some(MessageContent::Text(system)),
                name: None,
            });
        }
        messages.push(ChatMessageIn {
            role: "user".into(),
            content: Some(MessageContent::Text(req.prompt)),
            name: None,
        });
        let messages = crate::validate::chat_messages(&messages)?;
        r.backend
            .chat(&r.model, ChatRequest { messages, options })
            .await?
            .events
    };
    respond(shape, req.stream, events).await
}
