//! `POST /v1/completions`: one choice per prompt (string, strings, token ids or lists of them).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use nfai_inference::FinishReason;

use super::stream::{self, ChunkWriter};
use super::wire::completions::*;
use super::wire::{Usage, new_id};
use crate::api::json::{JsonBody, OpenAiJson};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::unix_now;
use crate::validate::{self, CompletionRequest as Valid, FieldError, GenerationOptions, Prompt};

/// `prompt` as validated prompts (count checked, token ids non-negative).
pub fn prompts(input: PromptInput, field: &str) -> Result<Vec<Prompt>, FieldError> {
    let prompts: Vec<Prompt> = match input {
        PromptInput::Text(t) => vec![Prompt::Text(t)],
        PromptInput::Texts(texts) => texts.into_iter().map(Prompt::Text).collect(),
        PromptInput::Tokens(ids) => vec![Prompt::Tokens(validate::token_ids(&ids, field)?)],
        PromptInput::TokenLists(lists) => lists
            .iter()
            .enumerate()
            .map(|(i, ids)| validate::token_ids(ids, &format!("{field}[{i}]")).map(Prompt::Tokens))
            .collect::<Result<_, _>>()?,
    };
    validate::prompt_count(prompts, field)
}

pub async fn handler(
    State(state): State<AppState>,
    OpenAiJson(req): OpenAiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let route = state.route(&req.model)?;
    if req.logprobs.is_some() {
        return Err(FieldError::unsupported("logprobs", "logprobs are not supported.").into());
    }
    if req.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(
            FieldError::unsupported("suffix", "suffix (insertion) is not supported.").into(),
        );
    }
    if req.best_of.is_some_and(|b| b != 1) {
        return Err(FieldError::unsupported("best_of", "Only best_of=1 is supported.").into());
    }
    let (sampling, stop) = validate::sampling(&req.sampling.input())?;
    let options = GenerationOptions {
        sampling,
        stop,
        max_tokens: validate::max_tokens(Some(req.max_tokens.unwrap_or(16)), "max_tokens")?,
        max_tokens_param: "max_tokens",
        ignore_eos: req.sampling.ignore_eos,
        keep_alive: validate::keep_alive(req.keep_alive.as_ref())?,
        stream: req.stream,
        deadline: crate::context::deadline(),
    };
    let valid = Valid {
        prompts: prompts(req.prompt, "prompt")?,
        options,
        echo: req.echo,
    };
    let generations = route.backend.complete(&route.model, valid).await?;
    let id = new_id("cmpl");
    let created = unix_now();
    let (echoes, streams): (Vec<String>, Vec<_>) =
        generations.into_iter().map(|g| (g.echo, g.events)).unzip();
    if req.stream {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        let echoes = if req.echo { echoes } else { Vec::new() };
        let writer = CompletionWriter {
            id,
            created,
            model: route.display,
            echoes,
        };
        return Ok(stream::sse(writer, streams, include_usage));
    }
    let mut choices = Vec::with_capacity(streams.len());
    let mut usage = Usage::new(0, 0);
    for (index, (events, echo)) in streams.into_iter().zip(echoes).enumerate() {
        let (text, reason, u) = crate::backend::collect(events).await?;
        usage.add(&u);
        choices.push(CompletionChoice {
            text: echo + &text,
            index,
            logprobs: None,
            finish_reason: Some(reason.as_str()),
        });
    }
    Ok(JsonBody(Completion {
        id,
        object: "text_completion",
        created,
        model: route.display,
        choices,
        usage: Some(usage),
        system_fingerprint: None,
    })
    .into_response())
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
        self.echoes
            .iter()
            .enumerate()
            .map(|(i, p)| self.chunk(vec![Self::choice(i, p, None)], None))
            .collect()
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
