//! State shared by the HTTP handlers, and name resolution (model name → backend).

use std::sync::Arc;

use crate::backend::Backend;
use crate::backend::native::NativeBackend;
use crate::error::ApiError;
use crate::registry::ModelRegistry;

/// Cheap to clone; everything inside is immutable or synchronises itself.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    native: Arc<NativeBackend>,
    served: Vec<String>,
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
    pub fn new(registry: ModelRegistry, served: Vec<String>) -> Self {
        let native = Arc::new(NativeBackend::new(Arc::new(registry)));
        Self(Arc::new(Inner { native, served, started_unix: crate::openai::unix_now() }))
    }

    pub fn registry(&self) -> &ModelRegistry {
        self.0.native.registry()
    }

    /// The backend and model name that serve `name` (an id or alias); 404 when unknown.
    pub fn route(&self, name: &str) -> Result<Route, ApiError> {
        let entry = self.registry().catalog().resolve(name).ok_or_else(|| ApiError::model_not_found(name))?;
        Ok(Route {
            backend: self.0.native.clone(),
            model: entry.id.clone(),
            display: entry.id.clone(),
        })
    }

    /// Ids of the models this process loads.
    pub fn served(&self) -> &[String] {
        &self.0.served
    }

    pub fn started_unix(&self) -> u64 {
        self.0.started_unix
    }
}
