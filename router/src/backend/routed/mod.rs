//! [`RoutedBackend`]: the backend of one route. It holds its targets' backends and owns the
//! routing policy: fallback from target to target, node choice by affinity and load (the
//! [`node::NodePool`]), cooldown of failing nodes, and the route's deadline.
//!
//! It tries its targets in order, the nodes of an upstream by the pool's choice, until one
//! starts (first token, or the embeddings) or the retry limit or the request's deadline is
//! reached. A failure that another node may not have ([`BackendError::is_retryable`]: connection
//! refused, 5xx, 429, a timeout, a stream that ends or fails before its first token) moves on; a
//! client error is answered at once. Once a stream has produced its first token it is handed to
//! the client; if it later breaks, its last event is `Failed`, which the API layer turns into an
//! error event. A client that does not stream gets a whole answer, so any failure moves on.

pub mod health;
pub mod node;
pub mod table;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use nfai_inference::GenerateEvent;
use tokio::time::Instant;

use self::node::{NoNode, NodeGuard};
use self::upstream::Upstream;
use super::error::BackendError;
use super::{Backend, BackendHealth, Embeddings, Generation, bounded};
use crate::config::routing::Cooldown;
use crate::validate::{ChatRequest, CompletionRequest, EmbeddingRequest};

/// Retry and deadline settings shared by every route.
#[derive(Debug)]
pub struct Policy {
    pub retries: usize,
    pub request_timeout: Duration,
    pub cooldown: Cooldown,
}

/// One place a route's requests may run.
pub struct Target {
    /// Native: the one backend. Upstream: one client per node, in the order of its nodes.
    pub backends: Vec<Arc<dyn Backend>>,
    /// The upstream whose nodes `backends` talk to; `None` for a native target.
    pub upstream: Option<Arc<Upstream>>,
    /// The model's name at the target.
    pub model: String,
    pub label: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Tries targets in order with retries; implements [`Backend`].
#[derive(Debug)]
pub struct RoutedBackend {
    name: String,
    pub targets: Vec<Target>,
    policy: Arc<Policy>,
}

/// A request a route can run: how to start it on a backend and what "started" means.
trait Operation: Clone + Send + 'static {
    type Out: Send + 'static;
    /// Whether the first byte is due soon: a streamed generation's or embeddings'. A whole
    /// generation's answer comes only when the generation is done.
    fn first_byte_due(&self) -> bool;
    fn deadline(&self) -> Option<Instant>;
    fn set_deadline(&mut self, deadline: Instant);
    fn start<'a>(
        self,
        backend: &'a dyn Backend,
        model: &'a str,
    ) -> BoxFuture<'a, Result<Self::Out, BackendError>>;
    /// Waits until the answer has started (its first token).
    fn started(out: Self::Out) -> BoxFuture<'static, Result<Self::Out, BackendError>>;
    /// Ends the answer's streams at `deadline` and keeps `guard` until they are dropped.
    fn hold(out: Self::Out, deadline: Instant, guard: Option<Arc<NodeGuard>>) -> Self::Out;
}

impl Operation for ChatRequest {
    type Out = Generation;
    fn first_byte_due(&self) -> bool {
        self.options.stream
    }
    fn deadline(&self) -> Option<Instant> {
        self.options.deadline
    }
    fn set_deadline(&mut self, deadline: Instant) {
        self.options.deadline = Some(deadline);
    }
    fn start<'a>(
        self,
        backend: &'a dyn Backend,
        model: &'a str,
    ) -> BoxFuture<'a, Result<Generation, BackendError>> {
        backend.chat(model, self)
    }
    fn started(out: Generation) -> BoxFuture<'static, Result<Generation, BackendError>> {
        first_token(out).boxed()
    }
    fn hold(out: Generation, deadline: Instant, guard: Option<Arc<NodeGuard>>) -> Generation {
        bounded(out, deadline, guard)
    }
}

impl Operation for CompletionRequest {
    type Out = Vec<Generation>;
    fn first_byte_due(&self) -> bool {
        self.options.stream
    }
    fn deadline(&self) -> Option<Instant> {
        self.options.deadline
    }
    fn set_deadline(&mut self, deadline: Instant) {
        self.options.deadline = Some(deadline);
    }
    fn start<'a>(
        self,
        backend: &'a dyn Backend,
        model: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Generation>, BackendError>> {
        backend.complete(model, self)
    }
    fn started(out: Vec<Generation>) -> BoxFuture<'static, Result<Vec<Generation>, BackendError>> {
        async move {
            let mut started = Vec::with_capacity(out.len());
            for g in out {
                started.push(first_token(g).await?);
            }
            Ok::<_, BackendError>(started)
        }
        .boxed()
    }
    fn hold(
        out: Vec<Generation>,
        deadline: Instant,
        guard: Option<Arc<NodeGuard>>,
    ) -> Vec<Generation> {
        out.into_iter()
            .map(|g| bounded(g, deadline, guard.clone()))
            .collect()
    }
}

impl Operation for EmbeddingRequest {
    type Out = Embeddings;
    fn first_byte_due(&self) -> bool {
        true
    }
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
    fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }
    fn start<'a>(
        self,
        backend: &'a dyn Backend,
        model: &'a str,
    ) -> BoxFuture<'a, Result<Embeddings, BackendError>> {
        backend.embed(model, self)
    }
    fn started(out: Embeddings) -> BoxFuture<'static, Result<Embeddings, BackendError>> {
        futures::future::ready(Ok(out)).boxed()
    }
    fn hold(out: Embeddings, _: Instant, _: Option<Arc<NodeGuard>>) -> Embeddings {
        out
    }
}

fn deadline_error() -> BackendError {
    BackendError::UpstreamTimeout(
        "The request's deadline passed before any upstream answered.".into(),
    )
}

impl RoutedBackend {
    pub fn new(name: String, targets: Vec<Target>, policy: Arc<Policy>) -> Self {
        Self {
            name,
            targets,
            policy,
        }
    }

    async fn run<O: Operation>(&self, mut op: O) -> Result<O::Out, BackendError> {
        let deadline = op
            .deadline()
            .unwrap_or_else(|| Instant::now() + self.policy.request_timeout);
        op.set_deadline(deadline);
        let max_attempts = self.policy.retries + 1;
        let mut attempts = 0;
        let mut last: Option<BackendError> = None;
        'targets: for target in &self.targets {
            let mut tried = Vec::new();
            loop {
                if attempts >= max_attempts {
                    break 'targets;
                }
                if Instant::now() >= deadline {
                    return Err(deadline_error());
                }
                let (index, guard) = match &target.upstream {
                    None => (None, None),
                    Some(up) => match up.pool.pick(&target.model, &tried) {
                        Ok((i, g)) => (Some(i), Some(g)),
                        Err(why) => {
                            let e = match why {
                                NoNode::Busy => BackendError::Busy(format!(
                                    "Every node of {} is at its concurrency limit.",
                                    target.label
                                )),
                                NoNode::Unavailable => BackendError::Unavailable(format!(
                                    "No node of {} is available.",
                                    target.label
                                )),
                            };
                            if last.is_none() || why == NoNode::Busy {
                                last = Some(e);
                            }
                            continue 'targets;
                        }
                    },
                };
                let Some(backend) = target.backends.get(index.unwrap_or(0)) else {
                    return Err(BackendError::Internal(format!(
                        "{} has no backend for node {index:?}",
                        target.label
                    )));
                };
                attempts += 1;
                let record = crate::context::record();
                if let Some(r) = &record {
                    r.upstream_attempt(&target.label);
                }
                let node = guard.as_ref().map(|g| g.0.clone());
                let attempt = self.attempt(target, backend.as_ref(), op.clone(), guard, deadline);
                let outcome = tokio::time::timeout_at(deadline, attempt).await;
                if let (Some(r), Err(_) | Ok(Err(_))) = (&record, &outcome) {
                    r.upstream_error(&target.label);
                }
                match outcome {
                    Err(_) => {
                        if let Some(n) = &node {
                            n.record_failure(&self.policy.cooldown);
                        }
                        return Err(deadline_error());
                    }
                    Ok(Ok(out)) => {
                        if let Some(n) = &node {
                            n.record_success();
                        }
                        return Ok(out);
                    }
                    Ok(Err(e)) if e.is_retryable() => {
                        tracing::warn!(route = %self.name, target = %target.label, "attempt failed: {e}");
                        if let Some(n) = &node {
                            n.record_failure(&self.policy.cooldown);
                        }
                        last = Some(e);
                        match index {
                            Some(i) => tried.push(i),
                            None => continue 'targets,
                        }
                    }
                    Ok(Err(e)) => return Err(e),
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            BackendError::Unavailable(format!(
                "No target of `{}` could serve the request.",
                self.name
            ))
        }))
    }

    /// One attempt: starts the request and waits for its first token (or its embeddings).
    async fn attempt<O: Operation>(
        &self,
        target: &Target,
        backend: &dyn Backend,
        op: O,
        guard: Option<NodeGuard>,
        deadline: Instant,
    ) -> Result<O::Out, BackendError> {
        let first_byte = match (&target.upstream, op.first_byte_due()) {
            (Some(up), true) => Some(up.cfg.first_byte_timeout),
            _ => None,
        };
        let started = async {
            let out = op.start(backend, &target.model).await?;
            O::started(out).await
        };
        let out = match first_byte {
            Some(limit) => tokio::time::timeout(limit, started).await.map_err(|_| {
                BackendError::UpstreamTimeout(format!(
                    "{} produced no first token in time.",
                    target.label
                ))
            })??,
            None => started.await?,
        };
        Ok(O::hold(out, deadline, guard.map(Arc::new)))
    }
}

/// Waits for the first non-empty token (or the end) and puts what it read back in front.
async fn first_token(mut g: Generation) -> Result<Generation, BackendError> {
    let mut head = Vec::new();
    loop {
        match g.events.next().await {
            Some(GenerateEvent::Failed(e)) => return Err(e.into()),
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
                return Err(BackendError::Upstream(
                    "The stream ended before its first token.".into(),
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

    /// `model` is the route's name; each target has its own name for the model.
    fn chat<'a>(
        &'a self,
        _model: &'a str,
        req: ChatRequest,
    ) -> BoxFuture<'a, Result<Generation, BackendError>> {
        self.run(req).boxed()
    }

    fn complete<'a>(
        &'a self,
        _model: &'a str,
        req: CompletionRequest,
    ) -> BoxFuture<'a, Result<Vec<Generation>, BackendError>> {
        self.run(req).boxed()
    }

    fn embed<'a>(
        &'a self,
        _model: &'a str,
        req: EmbeddingRequest,
    ) -> BoxFuture<'a, Result<Embeddings, BackendError>> {
        self.run(req).boxed()
    }

    fn health(&self) -> BoxFuture<'_, BackendHealth> {
        async move {
            let now = Instant::now();
            let up = self.targets.iter().any(|t| match &t.upstream {
                None => true,
                Some(u) => u
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
