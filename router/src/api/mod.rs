//! The HTTP layer: one module per protocol, each with its own wire types, handlers and routes
//! ([`openai`], [`ollama`], [`admin`]; OpenAI's [`files`], [`vector_stores`] and
//! [`responses`]), plus health,
//! readiness and metrics. Handlers convert
//! wire requests once into `crate::validate`'s types (carrying the deadline from
//! `crate::context`), call a `Backend`, and answer errors through `crate::error`.

pub mod admin;
pub mod console;
pub mod files;
pub mod gate;
pub mod health;
pub mod json;
pub mod layer;
pub mod metrics;
pub mod metrics_layer;
pub mod ollama;
pub mod openai;
pub mod openapi;
pub mod responses;
pub mod vector_stores;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::routing::get;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;

/// Every route, with the request context, the body limit and request tracing.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .merge(openai::routes())
        .merge(files::routes(
            state.retrieval().map_or(0, |r| r.options().max_file_bytes),
        ))
        .merge(vector_stores::routes())
        .merge(responses::routes())
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::handler))
        .route("/openapi.json", get(openapi::handler))
        .merge(admin::router(state.clone()))
        .merge(console::routes())
        .merge(ollama::routes())
        .fallback(|uri: Uri| async move { ApiError::not_found_route(uri.path()) })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::gate,
        ))
        .layer(layer::ContextLayer)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(json::BodyLimit(max_body_bytes)))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics_layer::observe,
        ))
        .with_state(state)
}
