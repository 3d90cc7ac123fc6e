//! State shared by the HTTP handlers.

use std::sync::Arc;

use crate::registry::ModelRegistry;

/// Cheap to clone; everything inside is immutable or synchronises itself.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    registry: ModelRegistry,
    served: Vec<String>,
    started_unix: u64,
}

impl AppState {
    pub fn new(registry: ModelRegistry, served: Vec<String>) -> Self {
        Self(Arc::new(Inner { registry, served, started_unix: crate::openai::unix_now() }))
    }

    pub fn registry(&self) -> &ModelRegistry {
        &self.0.registry
    }

    /// Ids of the models this process loads.
    pub fn served(&self) -> &[String] {
        &self.0.served
    }

    pub fn started_unix(&self) -> u64 {
        self.0.started_unix
    }
}
