//! State shared by the HTTP handlers, and name resolution (model name → backend).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::Keyring;
use crate::backend::Backend;
use crate::backend::error::BackendError;
use crate::backend::metered::Metered;
use crate::backend::native::NativeBackend;
use crate::backend::routed::table::RouteTable;
use crate::config::Secret;
use crate::config::routing::RoutingConfig;
use crate::limits::RateLimiter;
use crate::registry::ModelRegistry;

/// Cheap to clone; everything inside is immutable or synchronises itself.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    native: Arc<NativeBackend>,
    preload: Vec<String>,
    admin_token: Option<Secret>,
    routes: RouteTable,
    started_unix: u64,
    /// Request metrics (`/metrics`), which other components may add collectors to.
    metrics: Arc<crate::metrics::Metrics>,
    /// Access lines carry request and response bodies (`[logging] log_bodies`).
    log_bodies: bool,
    /// The request body limit (`server.max_body_bytes`).
    max_body_bytes: usize,
    /// Every preloaded model has been Ready once: from then on, readiness only needs their
    /// engines alive (an evicted one loads again on demand).
    preloads_done: AtomicBool,
    /// The API keys; `None`: requests need no key.
    keyring: Option<Arc<Keyring>>,
    limiter: Arc<RateLimiter>,
    /// `/metrics` needs a key or the admin token.
    private_metrics: bool,
    /// Files and vector stores (`/v1/files`, `/v1/vector_stores`); `None` until installed.
    retrieval: Option<nfai_retrieval::service::RetrievalService>,
    /// `[[retrieval.sources]]` and their database pools; `None` without sources.
    sources: Option<crate::retrieval::sources::Sources>,
    /// Stored responses (`/v1/responses`); `None` until installed.
    responses: Option<crate::responses::store::ResponseStore>,
}

/// Where a model name's requests go.
pub struct Route {
    pub backend: Arc<dyn Backend>,
    /// The model's name at that backend.
    pub model: String,
    /// The name answered in responses' `model`.
    pub display: String,
}

impl AppState {
    pub fn new(registry: ModelRegistry, preload: Vec<String>, admin_token: Option<Secret>) -> Self {
        let native = Arc::new(NativeBackend::new(Arc::new(registry)));
        let routes = RouteTable::default();
        Self(Arc::new(Inner {
            native,
            preload,
            admin_token,
            routes,
            started_unix: crate::time::unix_now(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            log_bodies: false,
            max_body_bytes: crate::config::defaults::MAX_BODY_BYTES,
            preloads_done: AtomicBool::new(false),
            keyring: None,
            limiter: RateLimiter::new(false),
            private_metrics: false,
            retrieval: None,
            sources: None,
            responses: None,
        }))
    }

    /// Installs the API keys and rate limits (before the state is shared).
    pub fn with_auth(
        mut self,
        keyring: Option<Arc<Keyring>>,
        limiter: Arc<RateLimiter>,
        private_metrics: bool,
    ) -> anyhow::Result<Self> {
        let inner = Arc::get_mut(&mut self.0)
            .ok_or_else(|| anyhow::anyhow!("keys must be set before the state is shared"))?;
        inner.keyring = keyring;
        inner.limiter = limiter;
        inner.private_metrics = private_metrics;
        Ok(self)
    }

    /// The API keys, when key checks are on.
    pub fn keyring(&self) -> Option<&Arc<Keyring>> {
        self.0.keyring.as_ref()
    }

    /// Per-key rate limits and usage.
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.0.limiter
    }

    /// Whether `/metrics` needs a key or the admin token.
    pub fn private_metrics(&self) -> bool {
        self.0.private_metrics
    }

    /// Installs the route table of `routing` (before the state is shared) and starts its
    /// upstreams' health polls.
    pub fn with_routing(mut self, routing: &RoutingConfig) -> anyhow::Result<Self> {
        let table = RouteTable::build(routing, &self.0.native)?;
        let inner = Arc::get_mut(&mut self.0).ok_or_else(|| {
            anyhow::anyhow!("the route table must be set before the state is shared")
        })?;
        inner.routes = table;
        inner.routes.start_polling();
        Ok(self)
    }

    /// Sets how requests are logged and the body limit (before the state is shared).
    pub fn with_logging(mut self, log_bodies: bool, max_body_bytes: usize) -> anyhow::Result<Self> {
        let inner = Arc::get_mut(&mut self.0)
            .ok_or_else(|| anyhow::anyhow!("logging must be set before the state is shared"))?;
        inner.log_bodies = log_bodies;
        inner.max_body_bytes = max_body_bytes;
        Ok(self)
    }

    /// Whether access lines carry request and response bodies.
    pub fn log_bodies(&self) -> bool {
        self.0.log_bodies
    }

    /// The request body limit.
    pub fn max_body_bytes(&self) -> usize {
        self.0.max_body_bytes
    }

    /// Installs the files and vector stores service (before the state is shared).
    pub fn with_retrieval(
        mut self,
        retrieval: nfai_retrieval::service::RetrievalService,
    ) -> anyhow::Result<Self> {
        let inner = Arc::get_mut(&mut self.0).ok_or_else(|| {
            anyhow::anyhow!("the retrieval service must be set before the state is shared")
        })?;
        inner.retrieval = Some(retrieval);
        Ok(self)
    }

    /// Installs the running sources (before the state is shared).
    pub fn with_sources(
        mut self,
        sources: Option<crate::retrieval::sources::Sources>,
    ) -> anyhow::Result<Self> {
        let inner = Arc::get_mut(&mut self.0)
            .ok_or_else(|| anyhow::anyhow!("the sources must be set before the state is shared"))?;
        inner.sources = sources;
        Ok(self)
    }

    /// The configured sources, when any.
    pub fn sources(&self) -> Option<&crate::retrieval::sources::Sources> {
        self.0.sources.as_ref()
    }

    /// The files and vector stores service, when installed.
    pub fn retrieval(&self) -> Option<&nfai_retrieval::service::RetrievalService> {
        self.0.retrieval.as_ref()
    }

    /// Installs the stored responses (before the state is shared).
    pub fn with_responses(
        mut self,
        responses: crate::responses::store::ResponseStore,
    ) -> anyhow::Result<Self> {
        let inner = Arc::get_mut(&mut self.0).ok_or_else(|| {
            anyhow::anyhow!("the response store must be set before the state is shared")
        })?;
        inner.responses = Some(responses);
        Ok(self)
    }

    /// The stored responses, when installed.
    pub fn responses(&self) -> Option<&crate::responses::store::ResponseStore> {
        self.0.responses.as_ref()
    }

    /// The backend of the models in this process.
    pub fn native(&self) -> &Arc<NativeBackend> {
        &self.0.native
    }

    /// The routed names (`[[routes]]`).
    pub fn routes(&self) -> &RouteTable {
        &self.0.routes
    }

    pub fn registry(&self) -> &ModelRegistry {
        self.0.native.registry()
    }

    /// The backend and model name that serve `name` (an id or alias). A `[[routes]]` name
    /// wins over a catalog name.
    pub fn route(&self, name: &str) -> Result<Route, BackendError> {
        if let Some(r) = self.0.routes.get(name) {
            return Ok(Route {
                backend: Arc::new(Metered::new(r.backend.clone(), r.config.model.clone())),
                model: r.config.model.clone(),
                display: r.config.model.clone(),
            });
        }
        let entry = self
            .registry()
            .catalog()
            .resolve(name)
            .ok_or_else(|| BackendError::ModelNotFound(name.to_string()))?;
        Ok(Route {
            backend: Arc::new(Metered::new(self.0.native.clone(), entry.id.clone())),
            model: entry.id.clone(),
            display: entry.id.clone(),
        })
    }

    /// Ids of the models loaded at start; `/ready` waits for them.
    pub fn preload(&self) -> &[String] {
        &self.0.preload
    }

    /// Whether every preloaded model has been Ready once.
    pub fn preloads_done(&self) -> bool {
        self.0.preloads_done.load(Ordering::Relaxed)
    }

    /// Records that every preloaded model has been Ready once.
    pub fn mark_preloads_done(&self) {
        self.0.preloads_done.store(true, Ordering::Relaxed);
    }

    pub fn admin_token(&self) -> Option<&Secret> {
        self.0.admin_token.as_ref()
    }

    pub fn started_unix(&self) -> u64 {
        self.0.started_unix
    }

    /// The request metrics of this app.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.0.metrics
    }
}
