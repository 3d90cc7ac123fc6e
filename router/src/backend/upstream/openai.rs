//! [`OpenAiClient`]: one node of an OpenAI-compatible server (llama-server, vLLM, another nfai, a
//! cloud API) as a [`Backend`]. `/v1/chat/completions` and `/v1/completions`, streamed as SSE
//! when the client streams and asked for one whole answer otherwise, and `/v1/embeddings`.
//! Tools and response formats go through unchanged, and calls come back as tool-call text
//! (see [`super::structured`]).

use std::borrow::Cow;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use nfai_inference::{EngineError, FinishReason, GenerateEvent, Usage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::{Call, NodeHttp, Response};
use super::lines::LineParser;
use super::structured::{CallDeltas, Dialect, OpenAiFields, WireMessage, messages, openai_calls};
use crate::backend::error::BackendError;
use crate::backend::{Backend, BackendHealth, Embeddings, EventStream, Generation};
use crate::validate::{
    ChatRequest, CompletionRequest, EmbeddingRequest, FieldError, GenerationOptions, Prompt,
};

/// A chat or text completion request body; only the fields the client set.
#[derive(Serialize)]
struct GenerationBody<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<WireMessage<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<PromptRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repetition_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ignore_eos: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(flatten)]
    structured: OpenAiFields<'a>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PromptRef<'a> {
    Text(&'a str),
    Tokens(&'a [u32]),
}

impl<'a> GenerationBody<'a> {
    fn new(model: &'a str, o: &'a GenerationOptions) -> Self {
        let s = &o.sampling;
        Self {
            model,
            messages: None,
            prompt: None,
            temperature: s.temperature,
            top_p: s.top_p,
            top_k: s.top_k,
            seed: s.seed,
            max_tokens: o.max_tokens,
            repetition_penalty: s.repetition_penalty,
            presence_penalty: s.presence_penalty,
            frequency_penalty: s.frequency_penalty,
            ignore_eos: o.ignore_eos,
            stop: &o.stop,
            stream: o.stream,
            stream_options: o.stream.then_some(StreamOptions {
                include_usage: true,
            }),
            structured: OpenAiFields::default(),
        }
    }
}

/// The parts of a whole chat or text completion that nfai reads.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, default)]
    choices: Vec<AnswerChoice<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct AnswerChoice<'a> {
    #[serde(borrow, default)]
    message: Option<AnswerMessage<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnswerMessage<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    /// Whole calls in an answer, call deltas in a chunk.
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<WireTokenDetails>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct WireTokenDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            prompt_tokens: u.prompt_tokens.unwrap_or(0) as usize,
            completion_tokens: u.completion_tokens.unwrap_or(0) as usize,
            cached_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0) as usize,
        }
    }
}

fn reason(r: &str) -> FinishReason {
    match r {
        "length" => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

fn usage(v: &Value) -> Usage {
    Usage {
        prompt_tokens: v["prompt_tokens"].as_u64().unwrap_or(0) as usize,
        completion_tokens: v["completion_tokens"].as_u64().unwrap_or(0) as usize,
        cached_tokens: v["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0) as usize,
    }
}

/// The answer to a generation request as events: parsed line by line when the upstream streams
/// (it was asked to, or ignored `"stream": false`), else one whole chat or text completion.
async fn answer(call: &Call<'_>, res: Response, chat: bool) -> Result<EventStream, BackendError> {
    let streamed = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if streamed {
        return Ok(call.events(res, SseParser::new(chat, call.label())));
    }
    let bytes = call.body(res).await?;
    let v: Answer<'_> = serde_json::from_slice(&bytes).map_err(|e| call.unreadable(e))?;
    let choice = v.choices.into_iter().next();
    let (text, reason) = match choice {
        Some(c) => {
            let text = match c.message {
                Some(m) if chat => match m.tool_calls.as_deref().and_then(openai_calls) {
                    Some(calls) => Some(Cow::Owned(calls)),
                    None => m.content,
                },
                _ if chat => None,
                _ => c.text,
            };
            (text, c.finish_reason.as_deref().map(reason))
        }
        None => (None, None),
    };
    let (Some(text), Some(reason)) = (text, reason) else {
        return Err(BackendError::Upstream(format!(
            "{}: the answer has no choice with text and a finish reason",
            call.label()
        )));
    };
    let end = GenerateEvent::Finished {
        reason,
        usage: v.usage.unwrap_or_default().into(),
        text: text.into_owned(),
    };
    Ok(futures::stream::iter([end]).boxed())
}

/// The parts of a streamed chunk that nfai reads; `usage` and `error` stay loose, as servers
/// differ in what they put there.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<ChunkChoice<'a>>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(borrow, default)]
    delta: Option<AnswerMessage<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

/// Parses SSE `data:` lines of chat or text completion chunks; streamed tool calls come out as
/// the final event's text.
pub struct SseParser {
    pub chat: bool,
    pub label: String,
    reason: Option<FinishReason>,
    usage: Usage,
    calls: CallDeltas,
}

impl SseParser {
    pub fn new(chat: bool, label: String) -> Self {
        Self {
            chat,
            label,
            reason: None,
            usage: Usage::default(),
            calls: CallDeltas::default(),
        }
    }

    fn finished(&mut self) -> Option<GenerateEvent> {
        let reason = self.reason.take()?;
        Some(GenerateEvent::Finished {
            reason,
            usage: self.usage,
            text: self.calls.take().unwrap_or_default(),
        })
    }
}

impl LineParser for SseParser {
    fn line(&mut self, line: &str) -> Vec<GenerateEvent> {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            return Vec::new();
        };
        if data == "[DONE]" {
            let end = self.finished().unwrap_or_else(|| {
                GenerateEvent::Failed(EngineError::Compute(format!(
                    "{}: the stream ended without a finish reason",
                    self.label
                )))
            });
            return vec![end];
        }
        let v: Chunk<'_> = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                return vec![GenerateEvent::Failed(EngineError::Compute(format!(
                    "{}: unreadable chunk: {e}",
                    self.label
                )))];
            }
        };
        if let Some(err) = v.error {
            let msg = super::http::error_message(&json!({ "error": err }).to_string());
            return vec![GenerateEvent::Failed(EngineError::Compute(format!(
                "{}: {msg}",
                self.label
            )))];
        }
        if let Some(u) = v.usage.filter(Value::is_object) {
            self.usage = usage(&u);
        }
        let mut out = Vec::new();
        if let Some(c) = v.choices.and_then(|c| c.into_iter().next()) {
            let text = match c.delta {
                Some(d) if self.chat => {
                    if let Some(calls) = &d.tool_calls {
                        self.calls.add(calls);
                    }
                    d.content
                }
                _ if self.chat => None,
                _ => c.text,
            };
            if let Some(t) = text.filter(|t| !t.is_empty()) {
                out.push(GenerateEvent::Token {
                    id: 0,
                    text: t.into_owned(),
                });
            }
            if let Some(r) = c.finish_reason {
                self.reason = Some(reason(&r));
            }
        }
        out
    }

    fn eof(&mut self) -> Option<GenerateEvent> {
        self.finished()
    }
}

#[derive(Serialize)]
struct EmbeddingBody<'a> {
    model: &'a str,
    input: Vec<PromptRef<'a>>,
    encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
struct EmbeddingAnswer {
    data: Vec<EmbeddingDatum>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct EmbeddingDatum {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// One node of an OpenAI-compatible server.
#[derive(Debug)]
pub struct OpenAiClient {
    node: Arc<NodeHttp>,
    name: String,
}

impl OpenAiClient {
    pub fn new(node: Arc<NodeHttp>) -> Self {
        let name = format!("openai:{}", node.cfg.name);
        Self { node, name }
    }

    async fn run_chat(&self, model: &str, req: ChatRequest) -> Result<Generation, BackendError> {
        let call = self.node.call();
        let body = GenerationBody {
            messages: Some(messages(&req.messages, Dialect::OpenAi)),
            structured: OpenAiFields::new(&req),
            ..GenerationBody::new(model, &req.options)
        };
        let stream = req.options.stream;
        let res = call
            .post_generation("/v1/chat/completions", &body, stream)
            .await?;
        Ok(Generation {
            events: answer(&call, res, true).await?,
            echo: String::new(),
        })
    }

    /// One `/v1/completions` per prompt.
    async fn run_complete(
        &self,
        model: &str,
        req: CompletionRequest,
    ) -> Result<Vec<Generation>, BackendError> {
        let call = self.node.call();
        let mut out = Vec::with_capacity(req.prompts.len());
        for p in &req.prompts {
            let (prompt, echo) = match p {
                Prompt::Text(t) => (
                    PromptRef::Text(t),
                    if req.echo { t.clone() } else { String::new() },
                ),
                Prompt::Tokens(_) if req.echo => {
                    return Err(FieldError::unsupported(
                        "echo",
                        "echo with token-id prompts is not supported through an upstream.",
                    )
                    .into());
                }
                Prompt::Tokens(ids) => (PromptRef::Tokens(ids), String::new()),
            };
            let body = GenerationBody {
                prompt: Some(prompt),
                ..GenerationBody::new(model, &req.options)
            };
            let res = call
                .post_generation("/v1/completions", &body, req.options.stream)
                .await?;
            out.push(Generation {
                events: answer(&call, res, false).await?,
                echo,
            });
        }
        Ok(out)
    }

    async fn run_embed(
        &self,
        model: &str,
        req: EmbeddingRequest,
    ) -> Result<Embeddings, BackendError> {
        let call = self.node.call();
        let input: Vec<PromptRef<'_>> = req
            .inputs
            .iter()
            .map(|p| match p {
                Prompt::Text(t) => PromptRef::Text(t),
                Prompt::Tokens(ids) => PromptRef::Tokens(ids),
            })
            .collect();
        let n = input.len();
        let body = EmbeddingBody {
            model,
            input,
            encoding_format: "float",
            dimensions: req.dimensions,
        };
        let v: EmbeddingAnswer = call.json(call.post("/v1/embeddings", &body).await?).await?;
        let mut data: Vec<(usize, Vec<f32>)> = v
            .data
            .into_iter()
            .enumerate()
            .map(|(i, d)| (d.index.unwrap_or(i), d.embedding))
            .collect();
        data.sort_by_key(|(i, _)| *i);
        if data.len() != n || data.iter().any(|(_, v)| v.is_empty()) {
            return Err(BackendError::Upstream(format!(
                "{}: expected {n} embeddings, got an unusable answer",
                call.label()
            )));
        }
        Ok(Embeddings {
            vectors: data.into_iter().map(|(_, v)| v).collect(),
            prompt_tokens: v.usage.and_then(|u| u.prompt_tokens).unwrap_or(0) as usize,
        })
    }

    /// Ids `/v1/models` lists with `state == "ready"` (nfai peers report residency this way).
    pub async fn resident(&self) -> Result<Vec<String>, BackendError> {
        let call = self.node.call();
        let v: Value = call.json(call.get("/v1/models").await?).await?;
        Ok(v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|m| m["state"].as_str() == Some("ready"))
                    .flat_map(|m| {
                        let aliases = m["aliases"].as_array().cloned().unwrap_or_default();
                        std::iter::once(m["id"].clone()).chain(aliases)
                    })
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}

impl Backend for OpenAiClient {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat<'a>(
        &'a self,
        model: &'a str,
        req: ChatRequest,
    ) -> BoxFuture<'a, Result<Generation, BackendError>> {
        self.run_chat(model, req).boxed()
    }

    fn complete<'a>(
        &'a self,
        model: &'a str,
        req: CompletionRequest,
    ) -> BoxFuture<'a, Result<Vec<Generation>, BackendError>> {
        self.run_complete(model, req).boxed()
    }

    fn embed<'a>(
        &'a self,
        model: &'a str,
        req: EmbeddingRequest,
    ) -> BoxFuture<'a, Result<Embeddings, BackendError>> {
        self.run_embed(model, req).boxed()
    }

    /// The upstream's `health_path`, else `/v1/models`, answers 2xx.
    fn health(&self) -> BoxFuture<'_, BackendHealth> {
        let path = self.node.cfg.health_path.as_deref().unwrap_or("/v1/models");
        self.node.probe(path).boxed()
    }
}
