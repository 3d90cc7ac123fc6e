//! The backend of one route: tries its targets in order, nodes of an upstream by the balancer's
//! choice, until one starts (first token, or the embeddings) or the retry limit or the request's
//! deadline is reached.
//!
//! A failure that another node may not have (connection refused, 5xx, 429, a timeout, a stream
//! that ends or fails before its first token) moves on; a client error (4xx) is answered at once.
//! Once a stream has produced its first token it is handed to the client; if it later breaks, its
//! last event is `Failed`, which the SSE and NDJSON writers turn into an error event. A client
//! that does not stream gets a whole answer from the upstream, so any failure of it moves on.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use nfai_inference::GenerateEvent;
use tokio::time::Instant;

use super::config::{Cooldown, Protocol};
use super::node::{NoNode, NodeGuard};
use super::table::Upstream;
use super::{ollama, openai, retryable, timeout_error};
use crate::backend::native::NativeBackend;
use crate::backend::*;
use crate::error::ApiError;

/// Retry and deadline settings shared by every route.
#[derive(Debug)]
pub struct Policy {
    pub retries: usize,
    pub request_timeout: Duration,
    pub cooldown: Cooldown,
}

#[derive(Debug)]
pub enum TargetKind {
    Native(Arc<NativeBackend>),
    Upstream(Arc<Upstream>, Protocol),
}

/// One place a route's requests may run.
#[derive(Debug)]
pub struct Target {
    pub kind: TargetKind,
    /// The model's name there; `None` uses the name the caller passes.
    pub model: Option<String>,
    pub label: String,
}

/// Tries targets in order with retries; implements [`Backend`].
#[derive(Debug)]
pub struct RoutedBackend {
    name: String,
    pub targets: Vec<Target>,
    policy: Arc<Policy>,
}

#[derive(Clone)]
enum Op {
    Chat(ChatRequest),
    Complete(CompletionRequest),
    Embed(EmbeddingRequest),
}

impl Op {
    /// Whether the upstream's first byte is due soon: a streamed generation's or embeddings'.
    /// A whole generation's answer comes only when the generation is done.
    fn first_byte_due(&self) -> bool {
        match self {
            Op::Chat(r) => r.options.stream,
            Op::Complete(r) => r.options.stream,
            Op::Embed(_) => true,
        }
    }
}

enum Out {
    Gens(Vec<Generation>),
    Emb(Embeddings),
}

fn deadline_error() -> ApiError {
    timeout_error("The request's deadline passed before any upstream answered.")
}

impl RoutedBackend {
    pub fn new(name: String, targets: Vec<Target>, policy: Arc<Policy>) -> Self {
        Self {
            name,
            targets,
            policy,
        }
    }

    async fn run(&self, model: &str, op: Op) -> Result<Out, ApiError> {
        let deadline = super::current()
            .deadline
            .unwrap_or_else(|| Instant::now() + self.policy.request_timeout);
        let max_attempts = self.policy.retries + 1;
        let mut attempts = 0;
        let mut last: Option<ApiError> = None;
        'targets: for target in &self.targets {
            let model = target.model.as_deref().unwrap_or(model);
            let mut tried = Vec::new();
            loop {
                if attempts >= max_attempts {
                    break 'targets;
                }
                if Instant::now() >= deadline {
                    return Err(deadline_error());
                }
                let (node, guard) = match &target.kind {
                    TargetKind::Native(_) => (None, None),
                    TargetKind::Upstream(up, _) => match up.pool.pick(model, &tried) {
                        Ok((i, g)) => (Some(i), Some(g)),
                        Err(why) => {
                            let msg = match why {
                                NoNode::Busy => format!(
                                    "Every node of {} is at its concurrency limit.",
                                    target.label
                                ),
                                NoNode::Unavailable => {
                                    format!("No node of {} is available.", target.label)
                                }
                            };
                            let e = match why {
                                NoNode::Busy => ApiError::overloaded(msg, 1),
                                NoNode::Unavailable => ApiError::unavailable(msg),
                            };
                            if last.is_none() || why == NoNode::Busy {
                                last = Some(e);
                            }
                            continue 'targets;
                        }
                    },
                };
                attempts += 1;
                let node_ref = guard.as_ref().map(|g| g.0.clone());
                let attempt = self.attempt(target, model, op.clone(), guard, deadline);
                match tokio::time::timeout_at(deadline, attempt).await {
                    Err(_) => {
                        if let Some(n) = &node_ref {
                            n.record_failure(&self.policy.cooldown);
                        }
                        return Err(deadline_error());
                    }
                    Ok(Ok(out)) => {
                        if let Some(n) = &node_ref {
                            n.record_success();
                        }
                        return Ok(out);
                    }
                    Ok(Err(e)) if retryable(&e) => {
                        tracing::warn!(route = %self.name, target = %target.label, status = %e.status, "attempt failed: {}", e.message);
                        if let Some(n) = &node_ref {
                            n.record_failure(&self.policy.cooldown);
                        }
                        last = Some(e);
                        match node {
                            Some(i) => tried.push(i),
                            None => continue 'targets,
                        }
                    }
                    Ok(Err(e)) => return Err(e),
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            ApiError::unavailable(format!(
                "No target of `{}` could serve the request.",
                self.name
            ))
        }))
    }

    /// One attempt: starts the request and waits for its first token (or its embeddings).
    async fn attempt(
        &self,
        target: &Target,
        model: &str,
        op: Op,
        guard: Option<NodeGuard>,
        deadline: Instant,
    ) -> Result<Out, ApiError> {
        let first_byte = match (&target.kind, op.first_byte_due()) {
            (TargetKind::Upstream(up, _), true) => Some(up.cfg.first_byte_timeout),
            _ => None,
        };
        let started = async {
            let gens = match (&target.kind, op) {
                (TargetKind::Native(b), Op::Chat(r)) => vec![b.chat(model, r).await?],
                (TargetKind::Native(b), Op::Complete(r)) => b.complete(model, r).await?,
                (TargetKind::Native(b), Op::Embed(r)) => {
                    return Ok::<_, ApiError>(Out::Emb(b.embed(model, r).await?));
                }
                (TargetKind::Upstream(up, p), op) => {
                    let node = guard
                        .as_ref()
                        .map(|g| g.0.clone())
                        .ok_or_else(|| ApiError::internal("no node"))?;
                    let call = up.call(&node);
                    match (p, op) {
                        (Protocol::Ollama, Op::Chat(r)) => {
                            vec![ollama::chat(call, model, r).await?]
                        }
                        (Protocol::Ollama, Op::Complete(r)) => {
                            ollama::complete(call, model, r).await?
                        }
                        (Protocol::Ollama, Op::Embed(r)) => {
                            return Ok(Out::Emb(ollama::embed(call, model, r).await?));
                        }
                        (Protocol::OpenAi, Op::Chat(r)) => {
                            vec![openai::chat(call, model, r).await?]
                        }
                        (Protocol::OpenAi, Op::Complete(r)) => {
                            openai::complete(call, model, r).await?
                        }
                        (Protocol::OpenAi, Op::Embed(r)) => {
                            return Ok(Out::Emb(openai::embed(call, model, r).await?));
                        }
                    }
                }
            };
            let mut started = Vec::with_capacity(gens.len());
            for g in gens {
                started.push(first_token(g).await?);
            }
            Ok(Out::Gens(started))
        };
        let out = match first_byte {
            Some(limit) => tokio::time::timeout(limit, started).await.map_err(|_| {
                timeout_error(format!("{} produced no first token in time.", target.label))
            })??,
            None => started.await?,
        };
        Ok(match out {
            Out::Gens(gens) => {
                let guard = guard.map(Arc::new);
                Out::Gens(
                    gens.into_iter()
                        .map(|g| bounded(g, deadline, guard.clone()))
                        .collect(),
                )
            }
            emb => emb,
        })
    }
}

/// Waits for the first non-empty token (or the end) and puts what it read back in front.
async fn first_token(mut g: Generation) -> Result<Generation, ApiError> {
    let mut head = Vec::new();
    loop {
        match g.events.next().await {
            Some(GenerateEvent::Failed(e)) => return Err(ApiError::from(e)),
            Some(ev) => {
                let done = match &ev {
                    GenerateEvent::Token { text, .. } => !text.is_empty(),
                    _ => true,
                };
                head.push(ev);
                if done {
                    break;
                }
            }
            None => {
                return Err(super::upstream_error(
                    "The stream ended before its first token.",
                ));
            }
        }
    }
    g.events = stream::iter(head).chain(g.events).boxed();
    Ok(g)
}

impl Backend for RoutedBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat<'a>(
        &'a self,
        model: &'a str,
        req: ChatRequest,
    ) -> BoxFuture<'a, Result<Generation, ApiError>> {
        async move {
            match self.run(model, Op::Chat(req)).await? {
                Out::Gens(mut g) => g.pop().ok_or_else(|| ApiError::internal("no generation")),
                Out::Emb(_) => Err(ApiError::internal("unexpected embeddings")),
            }
        }
        .boxed()
    }

    fn complete<'a>(
        &'a self,
        model: &'a str,
        req: CompletionRequest,
    ) -> BoxFuture<'a, Result<Vec<Generation>, ApiError>> {
        async move {
            match self.run(model, Op::Complete(req)).await? {
                Out::Gens(g) => Ok(g),
                Out::Emb(_) => Err(ApiError::internal("unexpected embeddings")),
            }
        }
        .boxed()
    }

    fn embed<'a>(
        &'a self,
        model: &'a str,
        req: EmbeddingRequest,
    ) -> BoxFuture<'a, Result<Embeddings, ApiError>> {
        async move {
            match self.run(model, Op::Embed(req)).await? {
                Out::Emb(e) => Ok(e),
                Out::Gens(_) => Err(ApiError::internal("unexpected generations")),
            }
        }
        .boxed()
    }

    fn health(&self) -> BoxFuture<'_, BackendHealth> {
        async move {
            let now = Instant::now();
            let up = self.targets.iter().any(|t| match &t.kind {
                TargetKind::Native(_) => true,
                TargetKind::Upstream(u, _) => u
                    .pool
                    .nodes
                    .iter()
                    .any(|n| n.is_healthy() && !n.in_cooldown(now)),
            });
            if up {
                BackendHealth::Healthy
            } else {
                BackendHealth::Unhealthy(format!("no target of `{}` is available", self.name))
            }
        }
        .boxed()
    }
}
