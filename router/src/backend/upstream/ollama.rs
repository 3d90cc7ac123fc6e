//! [`OllamaClient`]: one Ollama node as a [`Backend`]. `/api/chat`, `/api/generate` (raw, for
//! text completions) and `/api/embed`; NDJSON streams (or one line with `"stream": false`)
//! turned into [`GenerateEvent`]s; OpenAI-style parameters sent as Ollama `options`; tools and
//! output formats as Ollama's `tools` and `format`, its tool calls read back as tool-call text
//! (see [`super::structured`]). Request and answer bodies are typed wire structs.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use nfai_inference::{EngineError, FinishReason, GenerateEvent, Usage};
use serde::{Deserialize, Serialize};

use super::http::NodeHttp;
use super::lines::LineParser;
use super::structured::{Dialect, OllamaFields, WireMessage, messages, ollama_calls};
use crate::backend::error::BackendError;
use crate::backend::{Backend, BackendHealth, Embeddings, Generation};
use crate::validate::{
    ChatRequest, CompletionRequest, EmbeddingRequest, FieldError, GenerationOptions, KeepAlive,
    Prompt,
};

/// `options` of an Ollama request; only the fields the client set.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Options<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_predict: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_last_n: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_ctx: Option<usize>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub stop: &'a [String],
}

impl<'a> Options<'a> {
    /// Ollama's options from validated generation options.
    pub fn new(o: &'a GenerationOptions, num_ctx: Option<usize>) -> Self {
        let s = &o.sampling;
        Self {
            temperature: s.temperature,
            top_p: s.top_p,
            top_k: s.top_k,
            seed: s.seed,
            num_predict: o.max_tokens,
            repeat_penalty: s.repetition_penalty,
            repeat_last_n: s.repeat_last_n.map(|n| i64::try_from(n).unwrap_or(-1)),
            presence_penalty: s.presence_penalty,
            frequency_penalty: s.frequency_penalty,
            num_ctx,
            stop: &o.stop,
        }
    }
}

/// `keep_alive` as Ollama reads it: seconds (negative for forever) or a duration string.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum KeepAliveValue {
    Secs(i64),
    Text(String),
}

impl From<KeepAlive> for KeepAliveValue {
    fn from(k: KeepAlive) -> Self {
        match k.duration() {
            None => Self::Secs(-1),
            Some(d) if d.subsec_nanos() == 0 => {
                Self::Secs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            }
            Some(d) => Self::Text(format!("{}ms", d.as_millis())),
        }
    }
}

#[derive(Serialize)]
struct ChatBody<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    stream: bool,
    options: Options<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_alive: Option<KeepAliveValue>,
    #[serde(flatten)]
    structured: OllamaFields<'a>,
}

#[derive(Serialize)]
struct GenerateBody<'a> {
    model: &'a str,
    prompt: &'a str,
    raw: bool,
    stream: bool,
    options: Options<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_alive: Option<KeepAliveValue>,
}

#[derive(Serialize)]
struct EmbedBody<'a> {
    model: &'a str,
    input: Vec<&'a str>,
    truncate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_alive: Option<KeepAliveValue>,
}

#[derive(Deserialize)]
struct EmbedAnswer {
    embeddings: Vec<Vec<f32>>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
}

/// One NDJSON line of `/api/chat` or `/api/generate`.
#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    message: Option<LineMessage>,
    #[serde(default)]
    response: Option<String>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct LineMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<serde_json::Value>>,
}

/// `/api/ps` and `/api/tags`.
#[derive(Deserialize)]
struct ModelList {
    #[serde(default)]
    models: Vec<ListedModel>,
}

#[derive(Deserialize)]
struct ListedModel {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// The finish reason of a final Ollama line.
pub fn finish_reason(done_reason: Option<&str>) -> FinishReason {
    match done_reason {
        Some("length") => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

/// Parses Ollama's NDJSON lines: chat's `message.content` (its `tool_calls` as tool-call text
/// instead, when it has some) or generate's `response`.
pub struct NdjsonParser {
    pub chat: bool,
    pub label: String,
}

impl LineParser for NdjsonParser {
    fn line(&mut self, line: &str) -> Vec<GenerateEvent> {
        let v: Line = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                return vec![GenerateEvent::Failed(EngineError::Compute(format!(
                    "{}: unreadable stream line: {e}",
                    self.label
                )))];
            }
        };
        if let Some(err) = v.error {
            let msg = match err {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            return vec![GenerateEvent::Failed(EngineError::Compute(format!(
                "{}: {msg}",
                self.label
            )))];
        }
        let text = match v.message {
            Some(m) if self.chat => m.tool_calls.as_deref().and_then(ollama_calls).or(m.content),
            _ if self.chat => None,
            _ => v.response,
        };
        let text = text.unwrap_or_default();
        if v.done {
            let usage = Usage {
                prompt_tokens: v.prompt_eval_count.unwrap_or(0) as usize,
                completion_tokens: v.eval_count.unwrap_or(0) as usize,
                cached_tokens: 0,
            };
            return vec![GenerateEvent::Finished {
                reason: finish_reason(v.done_reason.as_deref()),
                usage,
                text,
            }];
        }
        vec![GenerateEvent::Token { id: 0, text }]
    }
}

/// One Ollama node.
#[derive(Debug)]
pub struct OllamaClient {
    node: Arc<NodeHttp>,
    name: String,
}

impl OllamaClient {
    pub fn new(node: Arc<NodeHttp>) -> Self {
        let name = format!("ollama:{}", node.cfg.name);
        Self { node, name }
    }

    /// The request's `keep_alive`, else the upstream's configured one.
    fn keep_alive(&self, k: Option<KeepAlive>) -> Option<KeepAliveValue> {
        k.map(KeepAliveValue::from)
            .or_else(|| self.node.cfg.keep_alive.clone().map(KeepAliveValue::Text))
    }

    async fn run_chat(&self, model: &str, req: ChatRequest) -> Result<Generation, BackendError> {
        let call = self.node.call();
        let o = &req.options;
        let body = ChatBody {
            model,
            messages: messages(&req.messages, Dialect::Ollama),
            structured: OllamaFields::new(&req),
            stream: o.stream,
            options: Options::new(o, call.cfg.num_ctx),
            keep_alive: self.keep_alive(o.keep_alive),
        };
        let res = call.post_generation("/api/chat", &body, o.stream).await?;
        let parser = NdjsonParser {
            chat: true,
            label: call.label(),
        };
        Ok(Generation {
            events: call.events(res, parser),
            echo: String::new(),
        })
    }

    /// One raw `/api/generate` per prompt (OpenAI completions take the prompt as is).
    async fn run_complete(
        &self,
        model: &str,
        req: CompletionRequest,
    ) -> Result<Vec<Generation>, BackendError> {
        let call = self.node.call();
        let o = &req.options;
        let mut out = Vec::with_capacity(req.prompts.len());
        for (i, p) in req.prompts.iter().enumerate() {
            let Prompt::Text(text) = p else {
                return Err(FieldError::unsupported(
                    "prompt",
                    format!(
                        "Token-id prompts cannot be sent to the Ollama upstream {} (prompt {i}).",
                        call.cfg.name
                    ),
                )
                .into());
            };
            let body = GenerateBody {
                model,
                prompt: text,
                raw: true,
                stream: o.stream,
                options: Options::new(o, call.cfg.num_ctx),
                keep_alive: self.keep_alive(o.keep_alive),
            };
            let res = call
                .post_generation("/api/generate", &body, o.stream)
                .await?;
            let parser = NdjsonParser {
                chat: false,
                label: call.label(),
            };
            let echo = if req.echo {
                text.clone()
            } else {
                String::new()
            };
            out.push(Generation {
                events: call.events(res, parser),
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
        let input = req
            .inputs
            .iter()
            .map(|p| match p {
                Prompt::Text(t) => Ok(t.as_str()),
                Prompt::Tokens(_) => Err(FieldError::unsupported(
                    "input",
                    format!(
                        "Token-id inputs cannot be sent to the Ollama upstream {}.",
                        call.cfg.name
                    ),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = input.len();
        let body = EmbedBody {
            model,
            input,
            truncate: true,
            dimensions: req.dimensions,
            keep_alive: self.keep_alive(req.keep_alive),
        };
        let v: EmbedAnswer = call.json(call.post("/api/embed", &body).await?).await?;
        if v.embeddings.len() != n {
            return Err(BackendError::Upstream(format!(
                "{}: {} vectors for {n} inputs",
                call.label(),
                v.embeddings.len(),
            )));
        }
        Ok(Embeddings {
            vectors: v.embeddings,
            prompt_tokens: v.prompt_eval_count.unwrap_or(0) as usize,
        })
    }

    /// Names of the models `/api/ps` reports resident.
    pub async fn resident(&self) -> Result<Vec<String>, BackendError> {
        self.list("/api/ps").await
    }

    /// Names of the models `/api/tags` reports installed.
    pub async fn tags(&self) -> Result<Vec<String>, BackendError> {
        self.list("/api/tags").await
    }

    async fn list(&self, path: &str) -> Result<Vec<String>, BackendError> {
        let call = self.node.call();
        let v: ModelList = call.json(call.get(path).await?).await?;
        Ok(v.models
            .into_iter()
            .filter_map(|m| m.model.or(m.name))
            .collect())
    }
}

impl Backend for OllamaClient {
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

    /// The upstream's `health_path`, else `/api/version`, answers 2xx.
    fn health(&self) -> BoxFuture<'_, BackendHealth> {
        let path = self
            .node
            .cfg
            .health_path
            .as_deref()
            .unwrap_or("/api/version");
        self.node.probe(path).boxed()
    }
}
