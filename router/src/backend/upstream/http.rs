//! HTTP plumbing shared by the Ollama and OpenAI clients: one pooled hyper client per upstream
//! (keep-alive, TLS for `https` nodes), node URLs split once so a request builds its URI without
//! parsing, requests bounded by the first-byte and total timeouts, upstream failures as typed
//! [`BackendError`]s, and whole bodies read with a size limit.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;
use tokio::time::Instant;

use super::lines::{LineParser, line_events, source_chain};
use crate::backend::error::BackendError;
use crate::backend::{BackendHealth, EventStream};
use crate::config::routing::UpstreamConfig;

/// An upstream's answer, its body not yet read.
pub type Response = hyper::Response<Incoming>;

/// The most a whole answer body may hold (embeddings of a large batch run to tens of MB).
const MAX_BODY: usize = 256 << 20;
/// The most of an error answer's body that is read for its message.
const MAX_ERROR_BODY: usize = 64 << 10;

/// The pooled client of one upstream, with its `Authorization` header when it has a key.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    auth: Option<HeaderValue>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

/// The pooled client of one upstream (keep-alive, connect timeout, no Nagle delay).
pub fn build_client(cfg: &UpstreamConfig) -> anyhow::Result<HttpClient> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(cfg.connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let inner = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .pool_timer(TokioTimer::new())
        .build(https);
    let auth = match &cfg.api_key {
        Some(key) => {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                anyhow::anyhow!("upstream {:?}: the API key is not a valid header", cfg.name)
            })?;
            v.set_sensitive(true);
            Some(v)
        }
        None => None,
    };
    Ok(HttpClient { inner, auth })
}

/// A node's base URL split once into scheme, authority and path prefix.
#[derive(Debug, Clone)]
pub struct BaseUri {
    scheme: Scheme,
    authority: Authority,
    prefix: String,
}

impl BaseUri {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let parts = url.parse::<Uri>()?.into_parts();
        let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
            anyhow::bail!("{url:?} is not an absolute http(s) URL");
        };
        let prefix = parts
            .path_and_query
            .map(|p| p.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        Ok(Self {
            scheme,
            authority,
            prefix,
        })
    }

    /// The URI of `path` (which starts with `/`) on this node.
    pub fn join(&self, path: &str) -> Result<Uri, axum::http::Error> {
        let path = if self.prefix.is_empty() {
            PathAndQuery::try_from(path)?
        } else {
            PathAndQuery::try_from(format!("{}{path}", self.prefix))?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
    }
}

/// One node of an upstream as its clients see it: the upstream's pooled client and settings,
/// and the node's base URL.
#[derive(Debug)]
pub struct NodeHttp {
    pub client: HttpClient,
    pub cfg: Arc<UpstreamConfig>,
    /// The base URL as configured, for messages.
    pub url: String,
    pub uri: BaseUri,
}

impl NodeHttp {
    pub fn new(client: HttpClient, cfg: Arc<UpstreamConfig>, url: String) -> anyhow::Result<Self> {
        Ok(Self {
            client,
            cfg,
            uri: BaseUri::parse(&url)?,
            url,
        })
    }

    /// Whether a GET of `path` answers 2xx within the first-byte timeout.
    pub async fn probe(&self, path: &str) -> BackendHealth {
        match self.call().get(path).await {
            Ok(_) => BackendHealth::Healthy,
            Err(e) => BackendHealth::Unhealthy(e.to_string()),
        }
    }

    /// A request's target, its total timeout starting now.
    pub fn call(&self) -> Call<'_> {
        Call {
            client: &self.client,
            cfg: &self.cfg,
            base: &self.url,
            uri: &self.uri,
            until: Instant::now() + self.cfg.total_timeout,
        }
    }
}

/// One request's target: the upstream's client and settings, the node, and when the upstream's
/// total timeout ends (headers and body together).
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub client: &'a HttpClient,
    pub cfg: &'a UpstreamConfig,
    pub base: &'a str,
    pub uri: &'a BaseUri,
    pub until: Instant,
}

impl Call<'_> {
    pub fn label(&self) -> String {
        format!("upstream {} ({})", self.cfg.name, self.base)
    }

    /// POSTs `body` as JSON to `path`; the response headers must come within the first-byte
    /// timeout.
    pub async fn post(&self, path: &str, body: &impl Serialize) -> Result<Response, BackendError> {
        self.post_generation(path, body, true).await
    }

    /// POSTs a generation request. A streamed answer's headers must come within the first-byte
    /// timeout; a whole answer comes only when the generation is done, so only the total
    /// timeout (and the request's deadline) bound it.
    pub async fn post_generation(
        &self,
        path: &str,
        body: &impl Serialize,
        streamed: bool,
    ) -> Result<Response, BackendError> {
        let mut buf = Vec::with_capacity(512);
        serde_json::to_writer(&mut buf, body).map_err(|e| {
            BackendError::Internal(format!("cannot encode the upstream request: {e}"))
        })?;
        let limit = streamed.then_some(self.cfg.first_byte_timeout);
        self.send(Method::POST, path, Some(buf), limit).await
    }

    pub async fn get(&self, path: &str) -> Result<Response, BackendError> {
        self.send(Method::GET, path, None, Some(self.cfg.first_byte_timeout))
            .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        limit: Option<Duration>,
    ) -> Result<Response, BackendError> {
        let uri = self.uri.join(path).map_err(|e| {
            BackendError::Upstream(format!("{}: cannot address {path}: {e}", self.label()))
        })?;
        let json = body.is_some();
        let mut req = hyper::Request::new(Full::new(Bytes::from(body.unwrap_or_default())));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        if json {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(auth) = &self.client.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        let by = limit.map_or(self.until, |l| self.until.min(Instant::now() + l));
        let res = match tokio::time::timeout_at(by, self.client.inner.request(req)).await {
            Err(_) => {
                return Err(BackendError::UpstreamTimeout(format!(
                    "{} sent no response in time.",
                    self.label()
                )));
            }
            Ok(Err(e)) if is_timeout(&e) => {
                let why = source_chain(&e);
                return Err(BackendError::UpstreamTimeout(format!(
                    "{} timed out: {why}",
                    self.label()
                )));
            }
            Ok(Err(e)) => {
                let why = source_chain(&e);
                return Err(BackendError::Upstream(format!(
                    "{} failed: {why}",
                    self.label()
                )));
            }
            Ok(Ok(res)) => res,
        };
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let body = self.read(res, MAX_ERROR_BODY).await.unwrap_or_default();
        Err(status_error(
            &self.label(),
            status,
            &String::from_utf8_lossy(&body),
        ))
    }

    /// A whole body, within the total timeout and [`MAX_BODY`].
    pub async fn body(&self, res: Response) -> Result<Bytes, BackendError> {
        self.read(res, MAX_BODY).await.map_err(|why| match why {
            Unread::Timeout => BackendError::UpstreamTimeout(format!(
                "{} did not finish its answer in time.",
                self.label()
            )),
            Unread::Failed(e) => {
                BackendError::Upstream(format!("{} sent an unreadable body: {e}", self.label()))
            }
        })
    }

    /// A whole JSON body.
    pub async fn json<T: DeserializeOwned>(&self, res: Response) -> Result<T, BackendError> {
        let bytes = self.body(res).await?;
        serde_json::from_slice(&bytes).map_err(|e| self.unreadable(e))
    }

    /// The error for an answer body that does not parse.
    pub fn unreadable(&self, e: serde_json::Error) -> BackendError {
        BackendError::Upstream(format!("{} sent an unreadable body: {e}", self.label()))
    }

    /// The body as events, line by line (NDJSON or SSE), within the total timeout.
    pub fn events<P: LineParser>(&self, res: Response, parser: P) -> EventStream {
        line_events(res.into_body(), self.label(), self.until, parser)
    }

    async fn read(&self, res: Response, max: usize) -> Result<Bytes, Unread> {
        let body = Limited::new(res.into_body(), max);
        match tokio::time::timeout_at(self.until, body.collect()).await {
            Err(_) => Err(Unread::Timeout),
            Ok(Err(e)) => Err(Unread::Failed(source_chain(e.as_ref()))),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }
}

enum Unread {
    Timeout,
    Failed(String),
}

/// Whether a client error was a timeout (connecting, or an I/O timeout below).
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && h.is_timeout()
        {
            return true;
        }
        cur = err.source();
    }
    false
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

/// An upstream's non-2xx answer as a [`BackendError`]: 429 and 5xx stay retryable, client
/// errors keep their status.
fn status_error(label: &str, status: StatusCode, text: &str) -> BackendError {
    let message = format!(
        "{label} answered {}: {}",
        status.as_u16(),
        error_message(text)
    );
    match status.as_u16() {
        429 => BackendError::Busy(message),
        s if s >= 500 => BackendError::Upstream(message),
        status => BackendError::UpstreamStatus { status, message },
    }
}
