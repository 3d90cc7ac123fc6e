//! The one interface every place a request can run behind: native engines, Ollama, and
//! OpenAI-compatible servers.
//!
//! Handlers parse and validate the wire request into the types here (ranges checked, fields
//! named), then hand them to a [`Backend`]; they never know which kind they talk to. A backend
//! applies its model's defaults, runs the request and returns streams of [`GenerateEvent`]s:
//! dropping a stream cancels the request.

pub mod native;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
pub use nfai_cache::KeepAlive;
use nfai_inference::{EngineError, GenerateEvent, SamplingParams};
use nfai_models::chat_template::ChatMessage;
use tokio::time::Instant;

use crate::catalog::SamplingDefaults;
use crate::error::ApiError;

/// Sampling fields as the client sent them: ranges checked, defaults not yet applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplingRequest {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub seed: Option<u64>,
    pub repetition_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
}

impl SamplingRequest {
    /// The engine's parameters: the request's values, else the model's defaults, else neutral.
    pub fn resolve(&self, d: &SamplingDefaults) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature.or(d.temperature).unwrap_or(1.0),
            top_p: self.top_p.or(d.top_p).unwrap_or(1.0),
            top_k: self.top_k.or(d.top_k).unwrap_or(0),
            seed: self.seed,
            repetition_penalty: self
                .repetition_penalty
                .or(d.repetition_penalty)
                .unwrap_or(1.0),
            presence_penalty: self.presence_penalty.unwrap_or(0.0),
            frequency_penalty: self.frequency_penalty.unwrap_or(0.0),
        }
    }
}

/// Generation options shared by chat and text completions.
#[derive(Debug, Clone, Default)]
pub struct GenerationOptions {
    pub sampling: SamplingRequest,
    /// Non-empty, at most four.
    pub stop: Vec<String>,
    /// The completion limit the client asked for, if any (at least 1).
    pub max_tokens: Option<usize>,
    /// The field `max_tokens` came from (`max_tokens` or `max_completion_tokens`), for errors.
    pub max_tokens_param: &'static str,
    pub ignore_eos: bool,
    /// How long the model stays loaded after this request.
    pub keep_alive: Option<KeepAlive>,
    /// The client reads the answer as it is generated. Upstreams are asked for a stream only
    /// then; otherwise for one whole answer, which costs both sides less.
    pub stream: bool,
}

/// A validated chat request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// Non-empty; roles are system, user or assistant.
    pub messages: Vec<ChatMessage>,
    pub options: GenerationOptions,
}

/// One prompt of a text completion.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Text(String),
    /// Token ids of the model's vocabulary (checked by the backend that runs them).
    Tokens(Vec<u32>),
}

/// A validated text-completion request: one choice per prompt.
#[derive(Debug, Clone)]
pub struct CompletionRequest {
    /// Between 1 and 2048.
    pub prompts: Vec<Prompt>,
    pub options: GenerationOptions,
    /// Return the prompt before the completion.
    pub echo: bool,
}

/// A validated embeddings request.
#[derive(Debug, Clone, Default)]
pub struct EmbeddingRequest {
    /// Between 1 and 2048, none empty.
    pub inputs: Vec<Prompt>,
    /// The vector size the client expects, if it said.
    pub dimensions: Option<usize>,
    /// How long the model stays loaded after this request.
    pub keep_alive: Option<KeepAlive>,
}

/// The events of one running generation; dropping it cancels the generation.
pub type EventStream = BoxStream<'static, GenerateEvent>;

/// A started generation.
pub struct Generation {
    pub events: EventStream,
    /// Text returned before the completion (`echo`), empty otherwise.
    pub echo: String,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("echo", &self.echo)
            .finish_non_exhaustive()
    }
}

/// Vectors in input order and the tokens they took.
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: usize,
}

/// Whether a backend can take requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendHealth {
    Healthy,
    Unhealthy(String),
}

/// Where requests run. `model` is the model's name at this backend (a catalog id for native
/// engines, the upstream's model name for upstreams).
pub trait Backend: Send + Sync {
    /// A short name for logs and metrics (`native`, `ollama:gpu-box`, …).
    fn name(&self) -> &str;

    fn chat<'a>(
        &'a self,
        model: &'a str,
        req: ChatRequest,
    ) -> BoxFuture<'a, Result<Generation, ApiError>>;

    fn complete<'a>(
        &'a self,
        model: &'a str,
        req: CompletionRequest,
    ) -> BoxFuture<'a, Result<Vec<Generation>, ApiError>>;

    fn embed<'a>(
        &'a self,
        model: &'a str,
        req: EmbeddingRequest,
    ) -> BoxFuture<'a, Result<Embeddings, ApiError>>;

    fn health(&self) -> BoxFuture<'_, BackendHealth>;
}

/// Runs `fut` until `deadline` (none: no limit); past it, 504 `deadline_exceeded`.
pub async fn within<T>(
    deadline: Option<Instant>,
    fut: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, fut)
            .await
            .map_err(|_| crate::upstream::deadline_error())?,
        None => fut.await,
    }
}

/// Ends the generation with `Failed(DeadlinePassed)` at `deadline` (dropping the rest, which
/// cancels it), and keeps `hold` (an upstream node's slot, say) until the stream is dropped.
pub fn bounded<T: Send + Sync + 'static>(
    g: Generation,
    deadline: Instant,
    hold: Option<Arc<T>>,
) -> Generation {
    let sleep = Box::pin(tokio::time::sleep_until(deadline));
    let events = stream::unfold(
        (Some(g.events), sleep, hold),
        |(ev, mut sleep, hold)| async move {
            let mut ev = ev?;
            tokio::select! {
                e = ev.next() => {
                    let e = e?;
                    let end = matches!(e, GenerateEvent::Finished { .. } | GenerateEvent::Failed(_));
                    Some((e, ((!end).then_some(ev), sleep, hold)))
                }
                () = &mut sleep => {
                    Some((GenerateEvent::Failed(EngineError::DeadlinePassed), (None, sleep, hold)))
                }
            }
        },
    );
    Generation {
        events: events.boxed(),
        echo: g.echo,
    }
}
