//! The one interface every place a request can run behind: [`native::NativeBackend`] (engines
//! in this process), [`upstream::ollama::OllamaClient`] and [`upstream::openai::OpenAiClient`]
//! (one node of another server each), and [`routed::RoutedBackend`] over several of them.
//!
//! Handlers validate the wire request into `crate::validate`'s types (ranges checked, fields
//! named, the deadline attached), then hand them to a [`Backend`]; they never know which kind
//! they talk to. A backend applies its model's defaults, runs the request and returns streams
//! of [`GenerateEvent`]s (dropping a stream cancels the request), or a typed [`BackendError`].

pub mod error;
pub mod metered;
pub mod native;
pub mod routed;
pub mod structured;
pub mod upstream;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use nfai_inference::{EngineError, FinishReason, GenerateEvent, Usage};
use tokio::time::Instant;

use self::error::BackendError;
use crate::validate::{ChatRequest, CompletionRequest, EmbeddingRequest};

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
    ) -> BoxFuture<'a, Result<Generation, BackendError>>;

    fn complete<'a>(
        &'a self,
        model: &'a str,
        req: CompletionRequest,
    ) -> BoxFuture<'a, Result<Vec<Generation>, BackendError>>;

    fn embed<'a>(
        &'a self,
        model: &'a str,
        req: EmbeddingRequest,
    ) -> BoxFuture<'a, Result<Embeddings, BackendError>>;

    fn health(&self) -> BoxFuture<'_, BackendHealth>;
}

/// Runs `fut` until `deadline` (none: no limit); past it, [`BackendError::DeadlineExceeded`].
pub async fn within<T>(
    deadline: Option<Instant>,
    fut: impl std::future::Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, fut)
            .await
            .map_err(|_| BackendError::DeadlineExceeded)?,
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

/// Waits for a whole generation: its text, finish reason and usage.
pub async fn collect(
    mut events: EventStream,
) -> Result<(String, FinishReason, Usage), BackendError> {
    let mut text = String::new();
    while let Some(ev) = events.next().await {
        match ev {
            GenerateEvent::Token { text: t, .. } => text.push_str(&t),
            GenerateEvent::Finished {
                reason,
                usage,
                text: t,
            } => {
                text.push_str(&t);
                return Ok((text, reason, usage));
            }
            GenerateEvent::Failed(e) => return Err(e.into()),
        }
    }
    Err(BackendError::EngineStopped(
        "The model's engine stopped before finishing the request.".into(),
    ))
}
