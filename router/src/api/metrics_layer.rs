//! The outermost layer: gives every request its id (`x-request-id` taken or made, echoed in the
//! response) and its `RequestRecord` (read by `ContextLayer` into the request context), and when
//! the response's last byte has gone (or the client has left) records the request's metrics and
//! writes its one access line to the `nfai::access` target. Bodies are logged only with
//! `[logging] log_bodies`; headers (and so secrets) never are.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Frame;

use crate::error::ApiError;
use crate::metrics::RequestRecord;
use crate::state::AppState;

/// Longest client request id kept; a longer one is replaced.
const MAX_REQUEST_ID: usize = 128;
/// Bytes of a request or response body an access line carries with `log_bodies`.
const MAX_LOGGED_BODY: usize = 64 * 1024;

/// The route label of `path`: the route's template, or `other` for unknown paths (so that
/// scans of random paths cannot grow the metrics without bound).
pub fn route_label(path: &str) -> &'static str {
    const FIXED: &[&str] = &[
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/models",
        "/v1/responses",
        "/v1/files",
        "/v1/vector_stores",
        "/api/chat",
        "/api/generate",
        "/api/embed",
        "/api/embeddings",
        "/api/tags",
        "/api/ps",
        "/api/show",
        "/api/version",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/admin/models",
        "/admin/memory",
        "/admin/keys",
        "/admin/ui",
    ];
    if let Some(p) = FIXED.iter().find(|p| **p == path) {
        return p;
    }
    const PREFIXES: &[(&str, &str)] = &[
        ("/v1/models/", "/v1/models/{id}"),
        ("/v1/files/", "/v1/files/{id}"),
        ("/v1/vector_stores/", "/v1/vector_stores/{id}"),
        ("/admin/models/", "/admin/models/{id}"),
        ("/admin/keys/", "/admin/keys/{id}"),
        ("/admin/ui/", "/admin/ui"),
    ];
    PREFIXES
        .iter()
        .find(|(p, _)| path.starts_with(p))
        .map_or("other", |(_, label)| label)
}

/// The client's request id when usable, else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_REQUEST_ID)
        .map_or_else(crate::context::new_request_id, str::to_string)
}

/// The middleware (see the module header).
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let record = Arc::new(RequestRecord::new(state.metrics().clone(), route));
    let id = request_id(&req);
    let Ok(id_header) = HeaderValue::from_str(&id) else {
        return ApiError::internal("request id").into_response();
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (mut parts, body) = req.into_parts();
    parts.headers.insert("x-request-id", id_header.clone());
    parts.extensions.insert(record.clone());
    let (body, request_body) = if state.log_bodies() {
        match axum::body::to_bytes(body, state.max_body_bytes()).await {
            Ok(b) => (Body::from(b.clone()), Some(lossy(&b))),
            Err(_) => {
                let res = ApiError::payload_too_large(state.max_body_bytes()).into_response();
                return finish_now(res, record, id, method, path, id_header);
            }
        }
    } else {
        (body, None)
    };
    let mut res = next.run(Request::from_parts(parts, body)).await;
    res.headers_mut().insert("x-request-id", id_header);
    // The gate puts the caller into the response's extensions: its key id (never the key).
    if let Some(key_id) = res
        .extensions()
        .get::<crate::auth::Caller>()
        .and_then(|c| c.key_id.as_deref())
    {
        record.set_key_id(key_id);
    }
    let status = res.status().as_u16();
    let (parts, body) = res.into_parts();
    let done = Done {
        record,
        status,
        id,
        method,
        path,
        request_body,
    };
    let body = Observed {
        inner: body,
        captured: state.log_bodies().then(Vec::new),
        done: Some(done),
    };
    Response::from_parts(parts, Body::new(body))
}

fn finish_now(
    mut res: Response,
    record: Arc<RequestRecord>,
    id: String,
    method: Method,
    path: String,
    id_header: HeaderValue,
) -> Response {
    res.headers_mut().insert("x-request-id", id_header);
    Done {
        record,
        status: res.status().as_u16(),
        id,
        method,
        path,
        request_body: None,
    }
    .finish(true, None);
    res
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(MAX_LOGGED_BODY)]).into_owned()
}

/// What the access line needs once the body has gone.
struct Done {
    record: Arc<RequestRecord>,
    status: u16,
    id: String,
    method: Method,
    path: String,
    request_body: Option<String>,
}

impl Done {
    /// Records the metrics and writes the access line; `complete`: the whole body was sent.
    fn finish(self, complete: bool, response_body: Option<&[u8]>) {
        let r = &self.record;
        r.finish(self.status);
        let s = r.summary();
        let duration_ms = r.started.elapsed().as_secs_f64() * 1e3;
        let ttft_ms = s.ttft_seconds.map(|t| t * 1e3);
        tracing::info!(
            target: "nfai::access",
            request_id = %self.id,
            key_id = r.key_id(),
            method = %self.method,
            path = %self.path,
            route = r.route,
            model = s.model.as_deref(),
            status = self.status,
            prompt_tokens = s.prompt_tokens,
            completion_tokens = s.completion_tokens,
            ttft_ms,
            duration_ms,
            upstream_attempts = s.upstream_attempts,
            complete,
            request_body = self.request_body.as_deref(),
            response_body = response_body.map(lossy).as_deref(),
            "request"
        );
    }
}

/// A response body that reports the request when its last frame has gone or it is dropped.
struct Observed {
    inner: Body,
    captured: Option<Vec<u8>>,
    done: Option<Done>,
}

impl Observed {
    fn finish(&mut self, complete: bool) {
        if let Some(done) = self.done.take() {
            done.finish(complete, self.captured.as_deref());
        }
    }
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(buf), Some(data)) = (this.captured.as_mut(), frame.data_ref()) {
                    let room = MAX_LOGGED_BODY.saturating_sub(buf.len());
                    buf.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        // The client left before the end (or the body ended without a last poll).
        let complete = http_body::Body::is_end_stream(&self.inner);
        self.finish(complete);
    }
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn routes_are_labelled_by_template() {
        assert_eq!(route_label("/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(route_label("/v1/models/abc"), "/v1/models/{id}");
        assert_eq!(route_label("/admin/models/x/load"), "/admin/models/{id}");
        assert_eq!(route_label("/wp-login.php"), "other");
    }
}
