//! [`Plan`]: a checked `POST /v1/responses` request before its file search runs: the route,
//! the conversation and the question. It runs the search ([`Plan::search`]) and then starts
//! the answer on the prompt built from the hits ([`Plan::answer`]), so that a streamed
//! response can send the search's events as the search goes.

use nfai_models::chat_template::ChatMessage;

use super::finish::Finisher;
use super::object::Searched;
use super::search;
use super::wire::Valid;
use crate::auth::Caller;
use crate::backend::EventStream;
use crate::catalog::ModelKind;
use crate::error::ApiError;
use crate::responses::prompt::{self, Budget, Source};
use crate::responses::store::Turn;
use crate::state::{AppState, Route};
use crate::validate::{ChatRequest, FieldError, FieldErrorKind, GenerationOptions};

/// The context assumed for a model whose catalog entry does not say (an upstream's).
const DEFAULT_CONTEXT: usize = 8192;
/// Tokens kept free for the answer when `max_output_tokens` is not set.
const DEFAULT_OUTPUT_RESERVE: usize = 512;

/// A request whose every field, store and previous response has been checked.
pub struct Plan {
    pub state: AppState,
    pub caller: Caller,
    pub req: Valid,
    pub route: Route,
    context: usize,
    /// The conversation so far, without system messages.
    turns: Vec<Turn>,
    /// `instructions` and the system messages, joined.
    instructions: String,
    /// The last user message, searched for when the request has `file_search`.
    query: Option<String>,
}

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
pub fn as_input(e: ApiError) -> ApiError {
    if e.param.as_deref() == Some("messages") {
        e.with_param("input")
    } else {
        e
    }
}

impl Plan {
    /// Checks what can be checked before anything runs: the model, the previous response, the
    /// question and every store the search would read.
    pub async fn new(state: AppState, caller: Caller, req: Valid) -> Result<Self, ApiError> {
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
        let instructions = system.join("\n\n");
        let query = match &req.file_search {
            Some(fs) => {
                let query = req
                    .input
                    .iter()
                    .rev()
                    .find(|t| t.role == "user")
                    .map(|t| t.content.clone())
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "input",
                            "file_search searches for the last user message; 'input' has none.",
                        )
                    })?;
                search::check(&state, &caller.access(), fs).await?;
                Some(query)
            }
            None => None,
        };
        Ok(Self {
            state,
            caller,
            req,
            route,
            context,
            turns,
            instructions,
            query,
        })
    }

    /// The file search before it has run (no hits yet), when the request has one.
    pub fn pending_search(&self) -> Option<Searched> {
        let query = self.query.clone()?;
        Some(Searched {
            item_id: super::object::new_id("fs"),
            queries: vec![query],
            hits: Vec::new(),
            include_results: self.req.include_results,
        })
    }

    /// Runs the search of `pending` (from [`Self::pending_search`]).
    pub async fn search(&self, pending: Searched) -> Result<Searched, ApiError> {
        let Some(fs) = &self.req.file_search else {
            return Ok(pending);
        };
        search::run(&self.state, fs, pending).await
    }

    /// Starts the answer on the prompt built from `searched`'s hits; the [`Finisher`] knows
    /// the sources the prompt numbers.
    pub async fn answer(
        &self,
        searched: Option<&Searched>,
    ) -> Result<(EventStream, Finisher), ApiError> {
        let chat: Vec<ChatMessage> = self
            .turns
            .iter()
            .map(|t| ChatMessage::new(t.role.clone(), t.content.clone()))
            .collect();
        let (system, numbered) = match searched {
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
                    context_tokens: self.context,
                    output_tokens: self.req.max_output_tokens.unwrap_or(DEFAULT_OUTPUT_RESERVE),
                };
                let a = prompt::assemble(
                    Some(&self.instructions),
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
            None => (self.instructions.clone(), Vec::new()),
        };
        let mut messages = Vec::with_capacity(chat.len() + 1);
        if !system.is_empty() {
            messages.push(ChatMessage::new("system", system));
        }
        messages.extend(chat);
        let options = GenerationOptions {
            sampling: self.req.sampling.clone(),
            stop: Vec::new(),
            max_tokens: self.req.max_output_tokens,
            max_tokens_param: "max_output_tokens",
            ignore_eos: false,
            keep_alive: None,
            stream: self.req.stream,
            deadline: crate::context::deadline(),
        };
        let generation = self
            .route
            .backend
            .chat(
                &self.route.model,
                ChatRequest {
                    messages,
                    options,
                    ..ChatRequest::default()
                },
            )
            .await
            .map_err(|e| as_input(e.into()))?;
        let finisher = Finisher {
            state: self.state.clone(),
            owner: self.caller.owner().map(str::to_owned),
            store: self.req.store,
            turns: self.turns.clone(),
            numbered,
        };
        Ok((generation.events, finisher))
    }
}
