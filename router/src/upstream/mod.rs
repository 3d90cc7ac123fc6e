//! Upstreams: requests sent to other servers (Ollama, OpenAI-compatible) and the route table that
//! maps a model name to an ordered list of targets, with retries, cooldown and load balancing.
//!
//! [`routed::RoutedBackend`] implements [`crate::backend::Backend`] over the targets of one route,
//! so the HTTP layer never knows where a request runs. Request-scoped values (the deadline from
//! `x-request-timeout`) travel in a task-local [`RequestContext`] set by [`DeadlineLayer`].

pub mod config;
pub mod health;
pub mod http;
pub mod lines;
pub mod node;
pub mod ollama;
pub mod openai;
pub mod routed;
pub mod table;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::future::Either;
use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;

use crate::error::ApiError;

/// Values of the request being served that backends may read.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// All attempts of the request end by then.
    pub deadline: Option<Instant>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The context of the request this task serves (default outside a request).
pub fn current() -> RequestContext {
    CONTEXT.try_with(Clone::clone).unwrap_or_default()
}

/// Runs `fut` with `ctx` as the request context.
pub async fn with_context<F: std::future::Future>(ctx: RequestContext, fut: F) -> F::Output {
    CONTEXT.scope(ctx, fut).await
}

/// The context `x-request-timeout` (seconds) sets, or the 400 for a bad value.
fn request_context(req: &Request) -> Result<RequestContext, ApiError> {
    let mut ctx = current();
    if let Some(v) = req.headers().get("x-request-timeout") {
        match v.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()) {
            Some(secs) if secs > 0.0 && secs.is_finite() && secs < 1e9 => {
                ctx.deadline = Some(Instant::now() + std::time::Duration::from_secs_f64(secs));
            }
            _ => {
                return Err(ApiError::invalid(
                    "x-request-timeout",
                    "The x-request-timeout header must be a positive number of seconds.",
                ));
            }
        }
    }
    Ok(ctx)
}

/// Layer: reads `x-request-timeout` into the request's deadline and serves the request inside
/// its [`RequestContext`]. The inner service is called in place, without cloning or boxing.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineLayer;

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline { inner }
    }
}

/// The service of [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
}

impl<S> tower::Service<Request> for Deadline<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future =
        Either<TaskLocalFuture<RequestContext, S::Future>, Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match request_context(&req) {
            Ok(ctx) => Either::Left(CONTEXT.scope(ctx, self.inner.call(req))),
            // Ollama's routes answer in Ollama's error shape.
            Err(e) if req.uri().path().starts_with("/api/") => {
                Either::Right(ready(Ok(crate::ollama_api::OllamaError(e).into_response())))
            }
            Err(e) => Either::Right(ready(Ok(e.into_response()))),
        }
    }
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
        kind: "server_error",
        param: None,
        code: Some(code),
        retry_after_secs: None,
    }
}

/// 504: the request's deadline or an upstream timeout passed.
pub fn timeout_error(message: impl Into<String>) -> ApiError {
    error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", message)
}

/// 504 `deadline_exceeded`: the request's deadline (`x-request-timeout`) passed while its model
/// was still loading, queued or generating.
pub fn deadline_error() -> ApiError {
    error(
        StatusCode::GATEWAY_TIMEOUT,
        "deadline_exceeded",
        "The request's deadline (x-request-timeout) passed before the answer was complete.",
    )
}

/// 502: an upstream failed or answered something unusable.
pub fn upstream_error(message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_GATEWAY, "upstream_error", message)
}

/// Whether another node or target may succeed where this attempt failed.
pub fn retryable(e: &ApiError) -> bool {
    e.status == StatusCode::TOO_MANY_REQUESTS
        || e.status == StatusCode::REQUEST_TIMEOUT
        || e.status.is_server_error()
}

#[cfg(test)]
mod tests;
