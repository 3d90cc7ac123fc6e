//! [`ContextLayer`]: reads `x-request-id` and `x-request-timeout` into the request's
//! [`RequestContext`] and serves the request inside it; a bad header is answered at once, in
//! Ollama's error shape on Ollama's routes. The inner service is called in place, without
//! cloning or boxing.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::Either;
use tokio::task::futures::TaskLocalFuture;

use crate::context::{self, RequestContext};
use crate::error::ApiError;
use crate::metrics::RequestRecord;

/// Whether `path` is one of Ollama's routes (answered in Ollama's error shape).
pub fn is_ollama_path(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The layer that sets every request's context.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContextLayer;

impl<S> tower::Layer<S> for ContextLayer {
    type Service = WithContext<S>;

    fn layer(&self, inner: S) -> WithContext<S> {
        WithContext { inner }
    }
}

/// The service of [`ContextLayer`].
#[derive(Debug, Clone)]
pub struct WithContext<S> {
    inner: S,
}

impl<S> tower::Service<Request> for WithContext<S>
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
        let headers = req.headers();
        let id = headers.get("x-request-id").and_then(|v| v.to_str().ok());
        let timeout = headers.get("x-request-timeout").map(|v| v.as_bytes());
        match context::from_headers(id, timeout) {
            Ok(mut ctx) => {
                ctx.record = req.extensions().get::<Arc<RequestRecord>>().cloned();
                Either::Left(context::scope(ctx, self.inner.call(req)))
            }
            Err(e) => {
                let e = ApiError::from(e);
                let res = if is_ollama_path(req.uri().path()) {
                    e.into_ollama_response()
                } else {
                    e.into_response()
                };
                Either::Right(ready(Ok(res)))
            }
        }
    }
}
