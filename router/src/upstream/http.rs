//! HTTP plumbing shared by the Ollama and OpenAI clients: one pooled `reqwest::Client` per
//! upstream, requests bounded by the first-byte timeout, upstream errors mapped to
//! [`ApiError`]s, and response bodies split into lines and parsed into [`GenerateEvent`]s.

use std::collections::VecDeque;

use futures::stream::{self, BoxStream, StreamExt};
use nfai_inference::{EngineError, GenerateEvent};
use reqwest::StatusCode;
use serde_json::Value;

use super::config::UpstreamConfig;
use super::{timeout_error, upstream_error};
use crate::backend::EventStream;
use crate::error::ApiError;

/// The pooled client of one upstream (keep-alive, connect and total timeouts).
pub fn build_client(cfg: &UpstreamConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.total_timeout)
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()?)
}

/// One request's target: the upstream's client and settings and the node's base URL.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub client: &'a reqwest::Client,
    pub cfg: &'a UpstreamConfig,
    pub base: &'a str,
}

impl Call<'_> {
    fn label(&self) -> String {
        format!("upstream {} ({})", self.cfg.name, self.base)
    }

    /// POSTs `body` to `path`; the response headers must come within the first-byte timeout.
    pub async fn post(&self, path: &str, body: &Value) -> Result<reqwest::Response, ApiError> {
        self.post_generation(path, body, true).await
    }

    /// POSTs a generation request. A streamed answer's headers must come within the first-byte
    /// timeout; a whole answer comes only when the generation is done, so only the total
    /// timeout (and the request's deadline) bound it.
    pub async fn post_generation(
        &self,
        path: &str,
        body: &Value,
        streamed: bool,
    ) -> Result<reqwest::Response, ApiError> {
        let mut req = self.client.post(format!("{}{path}", self.base)).json(body);
        if let Some(key) = &self.cfg.api_key {
            req = req.bearer_auth(key);
        }
        let limit = streamed.then_some(self.cfg.first_byte_timeout);
        self.send(req, limit).await
    }

    pub async fn get(&self, path: &str) -> Result<reqwest::Response, ApiError> {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(key) = &self.cfg.api_key {
            req = req.bearer_auth(key);
        }
        self.send(req, Some(self.cfg.first_byte_timeout)).await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        limit: Option<std::time::Duration>,
    ) -> Result<reqwest::Response, ApiError> {
        let limit = limit.unwrap_or(self.cfg.total_timeout);
        let res = match tokio::time::timeout(limit, req.send()).await {
            Err(_) => {
                return Err(timeout_error(format!(
                    "{} sent no response in time.",
                    self.label()
                )));
            }
            Ok(Err(e)) if e.is_timeout() => {
                return Err(timeout_error(format!("{} timed out: {e}", self.label())));
            }
            Ok(Err(e)) => {
                return Err(upstream_error(format!(
                    "{} failed: {}",
                    self.label(),
                    source_chain(&e)
                )));
            }
            Ok(Ok(res)) => res,
        };
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        Err(status_error(&self.label(), status, &text))
    }

    /// Reads a whole JSON body.
    pub async fn json(&self, res: reqwest::Response) -> Result<Value, ApiError> {
        res.json()
            .await
            .map_err(|e| upstream_error(format!("{} sent an unreadable body: {e}", self.label())))
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// The message of an OpenAI (`{"error":{"message"}}`) or Ollama (`{"error":"…"}`) error body.
pub fn error_message(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    match &v["error"] {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or(text)
            .to_string(),
        _ => text.chars().take(500).collect(),
    }
}

/// An upstream's non-2xx answer as an [`ApiError`]: 429 and 5xx stay retryable, client errors
/// keep their status.
fn status_error(label: &str, status: StatusCode, text: &str) -> ApiError {
    let msg = format!(
        "{label} answered {}: {}",
        status.as_u16(),
        error_message(text)
    );
    match status.as_u16() {
        429 => ApiError::overloaded(msg, 1),
        s if s >= 500 => upstream_error(msg),
        404 => ApiError::model_not_found("")
            .with_code("model_not_found")
            .message_as(msg),
        _ => {
            let mut e = ApiError::invalid("", msg);
            e.param = None;
            e.code = None;
            e.status = axum::http::StatusCode::from_u16(status.as_u16())
                .unwrap_or(axum::http::StatusCode::BAD_REQUEST);
            e
        }
    }
}

trait MessageAs {
    fn message_as(self, m: String) -> Self;
}

impl MessageAs for ApiError {
    fn message_as(mut self, m: String) -> Self {
        self.message = m;
        self
    }
}

/// Turns body lines into events; stateful per stream.
pub trait LineParser: Send + 'static {
    /// Events for one non-empty line; a `Finished` or `Failed` ends the stream.
    fn line(&mut self, line: &str) -> Vec<GenerateEvent>;
    /// The body ended without a final event: a `Finished` if the parser saw enough, else none.
    fn eof(&mut self) -> Option<GenerateEvent> {
        None
    }
}

fn broke(label: &str, why: &str) -> GenerateEvent {
    GenerateEvent::Failed(EngineError::Compute(format!(
        "{label}: the stream broke: {why}"
    )))
}

struct LineState<P> {
    body: BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buf: Vec<u8>,
    pending: VecDeque<GenerateEvent>,
    parser: P,
    label: String,
    done: bool,
}

/// The response body as events, line by line (NDJSON or SSE).
pub fn line_events<P: LineParser>(res: reqwest::Response, label: String, parser: P) -> EventStream {
    let state = LineState {
        body: res.bytes_stream().boxed(),
        buf: Vec::new(),
        pending: VecDeque::new(),
        parser,
        label,
        done: false,
    };
    stream::unfold(state, |mut s| async move {
        loop {
            if let Some(ev) = s.pending.pop_front() {
                if matches!(
                    ev,
                    GenerateEvent::Finished { .. } | GenerateEvent::Failed(_)
                ) {
                    s.pending.clear();
                    s.done = true;
                }
                return Some((ev, s));
            }
            if s.done {
                return None;
            }
            if let Some(pos) = s.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = s.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if !text.is_empty() {
                    s.pending.extend(s.parser.line(text));
                }
                continue;
            }
            match s.body.next().await {
                Some(Ok(chunk)) => s.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    s.pending.push_back(broke(&s.label, &source_chain(&e)));
                }
                None => {
                    let rest = String::from_utf8_lossy(&std::mem::take(&mut s.buf))
                        .trim()
                        .to_string();
                    if !rest.is_empty() {
                        s.pending.extend(s.parser.line(&rest));
                        if !s.pending.is_empty() {
                            continue;
                        }
                    }
                    let last = s.parser.eof().unwrap_or_else(|| {
                        broke(
                            &s.label,
                            "the upstream closed it before the generation finished",
                        )
                    });
                    s.pending.push_back(last);
                }
            }
        }
    })
    .boxed()
}
