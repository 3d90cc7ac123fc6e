//! `POST /v1/responses`: checks the request, continues a stored conversation
//! (`previous_response_id`), runs the file search, assembles the prompt
//! (`crate::responses::prompt`), and generates through the model's backend like chat does, so
//! native and upstream models both answer. The answer goes out as one response object or as
//! the Responses API's SSE events ([`super::stream`]); with `store` it is kept for
//! `GET /v1/responses/{id}` and later turns.
//!
//! The file search runs before the answer starts, also when streaming: its events are sent
//! first, each at once.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use nfai_inference::FinishReason;
use nfai_models::chat_template::ChatMessage;
use serde_json::Value;

use super::finish::Finisher;
use super::object::{Draft, new_id};
use super::wire::{CreateBody, Valid};
use super::{search, stream};
use crate::api::json::{JsonBody, OpenAiJson};
use crate::auth::Caller;
use crate::catalog::ModelKind;
use crate::error::ApiError;
use crate::responses::cite;
use crate::responses::prompt::{self, Budget, Source};
use crate::responses::store::Turn;
use crate::state::AppState;
use crate::time::unix_now;
use crate::validate::{ChatRequest, FieldError, FieldErrorKind, GenerationOptions};

/// The context assumed for a model whose catalog entry does not say (an upstream's).
const DEFAULT_CONTEXT: usize = 8192;
/// Tokens kept free for the answer when `max_output_tokens` is not set.
const DEFAULT_OUTPUT_RESERVE: usize = 512;

/// The conversation of `id`, when this caller may see it.
async fn previous(state: &AppState, caller: &Caller, id: &str) -> Result<Vec<Turn>, ApiError> {
    let missing = || {
        ApiError::from(FieldError::invalid(
            "previous_response_id",
            format!("Previous response with id '{id}' not found."),
        ))
        .with_code("previous_response_not_found")
    };
    let store = state.responses().ok_or_else(missing)?;
    match store.get(id).await? {
        Some(r) if caller.may_see(r.owner.as_deref()) => Ok(r.conversation),
        _ => Err(missing()),
    }
}

/// The model's context length; a 400 on `model` when it cannot answer (an embedding model).
fn context_of(state: &AppState, name: &str, model: &str) -> Result<usize, ApiError> {
    if state.routes().get(name).is_some() {
        return Ok(DEFAULT_CONTEXT);
    }
    let Some(entry) = state.registry().catalog().resolve(model) else {
        return Ok(DEFAULT_CONTEXT);
    };
    if entry.kind == ModelKind::Embedding {
        return Err(FieldError::new(
            FieldErrorKind::WrongModelKind,
            "model",
            format!("The model '{name}' is an embedding model; /v1/responses needs a chat model."),
        )
        .into());
    }
    Ok(entry.context_length.unwrap_or(DEFAULT_CONTEXT))
}

/// The errors of the chat path, with `messages` (the prompt) read as this API's `input`.
fn as_input(e: ApiError) -> ApiError {
    if e.param.as_deref() == Some("messages") {
        e.with_param("input")
    } else {
        e
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    OpenAiJson(body): OpenAiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let req: Valid = body.validate()?;
    let caller = caller.map(|Extension(c)| c).unwrap_or_default();
    let route = state.route(&req.model)?;
    let context = context_of(&state, &req.model, &route.model)?;
    let mut turns = match &req.previous_response_id {
        Some(id) => previous(&state, &caller, id).await?,
        None => Vec::new(),
    };
    let mut system: Vec<&str> = req.instructions.as_deref().into_iter().collect();
    for t in &req.input {
        if t.role == "system" {
            system.push(&t.content);
        } else {
            turns.push(t.clone());
        }
    }
    let searched = match &req.file_search {
        Some(fs) => {
            let query = req
                .input
                .iter()
                .rev()
                .find(|t| t.role == "user")
                .map(|t| t.content.as_str())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "input",
                        "file_search searches for the last user message; 'input' has none.",
                    )
                })?;
            Some(search::run(&state, &caller.access(), fs, query, req.include_results).await?)
        }
        None => None,
    };
    let chat: Vec<ChatMessage> = turns
        .iter()
        .map(|t| ChatMessage::new(t.role.clone(), t.content.clone()))
        .collect();
    let instructions = system.join("\n\n");
    let (system, numbered) = match &searched {
        Some(s) => {
            let sources: Vec<Source> = s
                .hits
                .iter()
                .map(|h| Source {
                    file_id: h.payload.file_id.clone(),
                    filename: h.payload.filename.clone(),
                    text: h.payload.text.clone(),
                })
                .collect();
            let budget = Budget {
                context_tokens: context,
                output_tokens: req.max_output_tokens.unwrap_or(DEFAULT_OUTPUT_RESERVE),
            };
            let a = prompt::assemble(
                Some(&instructions),
                &chat,
                &sources,
                budget,
                prompt::estimate_tokens,
            );
            let numbered = a
                .used
                .iter()
                .filter_map(|&i| sources.get(i).cloned())
                .collect();
            (a.system, numbered)
        }
        None => (instructions, Vec::new()),
    };
    let mut messages = Vec::with_capacity(chat.len() + 1);
    if !system.is_empty() {
        messages.push(ChatMessage::new("system", system));
    }
    messages.extend(chat);
    let options = GenerationOptions {
        sampling: req.sampling.clone(),
        stop: Vec::new(),
        max_tokens: req.max_output_tokens,
        max_tokens_param: "max_output_tokens",
        ignore_eos: false,
        keep_alive: None,
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
                ..ChatRequest::default()
            },
        )
        .await
        .map_err(|e| as_input(e.into()))?;
    let draft = Draft {
        id: new_id("resp"),
        created_at: unix_now(),
        model: route.display,
        message_id: new_id("msg"),
        search: searched,
        echo: req.echo,
    };
    let finisher = Finisher {
        state: state.clone(),
        owner: caller.owner().map(str::to_owned),
        store: req.store,
        turns,
        numbered,
    };
    if req.stream {
        return Ok(stream::sse(draft, finisher, generation.events));
    }
    let (raw, reason, usage) = crate::backend::collect(generation.events)
        .await
        .map_err(|e| as_input(e.into()))?;
    let (text, citations) = cite::strip(&raw, finisher.sources());
    let annotations = finisher.annotations(&citations, text.chars().count());
    let status = match reason {
        FinishReason::Stop => "completed",
        FinishReason::Length => "incomplete",
    };
    let mut output: Vec<Value> = draft.search_item("completed").into_iter().collect();
    output.push(draft.message(status, Some((&text, &annotations))));
    let response = draft.response(status, output, Some(&usage), None);
    finisher.save(&response, &text).await;
    Ok(JsonBody(response).into_response())
}
