//! State shared by the HTTP handlers, and name resolution (model name → backend).

use std::sync::Arc;

use crate::backend::Backend;
use crate::backend::native::NativeBackend;
use crate::config::Secret;
use crate::error::ApiError;
use crate::registry::ModelRegistry;

/// Cheap to clone; everything inside is immutable or synchronises itself.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    native: Arc<NativeBackend>,
    preload: Vec<String>,
    admin_token: Option<Secret>,
    routes: crate::upstream::table::RouteTable,
    started_unix: u64,
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
        let routes = crate::upstream::table::RouteTable::default();
        Self(Arc::new(Inner {
            native,
            preload,
            admin_token,
            routes,
            started_unix: crate::openai::unix_now(),
        }))
    }

    /// Installs the route table of `routing` (before the state is shared) and starts its
    /// upstreams' health polls.
    pub fn with_routing(
        mut self,
        routing: &crate::upstream::config::RoutingConfig,
    ) -> anyhow::Result<Self> {
        let table = crate::upstream::table::RouteTable::build(routing, &self.0.native)?;
        let inner = Arc::get_mut(&mut self.0).ok_or_else(|| {
            anyhow::anyhow!("the route table must be set before the state is shared")
        })?;
        inner.routes = table;
        inner.routes.start_polling();
        Ok(self)
    }

    /// The routed names (`[[routes]]`).
    pub fn routes(&self) -> &crate::upstream::table::RouteTable {
        &self.0.routes
    }

    pub fn registry(&self) -> &ModelRegistry {
        self.0.native.registry()
    }

    /// The backend and model name that serve `name` (an id or alias); 404 when unknown.
    /// A `[[routes]]` name wins over a catalog name.
    pub fn route(&self, name: &str) -> Result<Route, ApiError> {
        if let Some(r) = self.0.routes.get(name) {
            return Ok(Route {
                backend: r.backend.clone(),
                model: r.config.model.clone(),
                display: r.config.model.clone(),
            });
        }
        let entry = self
            .registry()
            .catalog()
            .resolve(name)
            .ok_or_else(|| ApiError::model_not_found(name))?;
        Ok(Route {
            backend: self.0.native.clone(),
            model: entry.id.clone(),
            display: entry.id.clone(),
        })
    }

    /// Ids of the models loaded at start; `/ready` waits for them.
    pub fn preload(&self) -> &[String] {
        &self.0.preload
    }

    pub fn admin_token(&self) -> Option<&Secret> {
        self.0.admin_token.as_ref()
    }

    pub fn started_unix(&self) -> u64 {
        self.0.started_unix
    }
}
