//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json` and kept in
//! `docs/openapi.json` (`nfai openapi > docs/openapi.json`; a test compares them).
//!
//! Request and response bodies are the wire types' own schemas (`utoipa::ToSchema` derives on
//! `api::openai::wire`, `api::admin::wire`); this module lists the routes, their statuses and
//! the error shapes. Ollama's routes are described with open objects; the files and vector
//! store routes and their objects are in [`retrieval`], the Responses API's in [`responses`].

mod build;
mod responses;
mod retrieval;

// The operation builder, error shapes and schema helpers.
use build::*;

use axum::Json;
use axum::response::IntoResponse;
use utoipa::PartialSchema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, RefOr,
    Schema,
};

use super::admin::wire as admin;
use super::openai::wire::{chat, completions, embeddings, models};

/// The whole description.
pub fn document() -> OpenApi {
    use HttpMethod::{Get, Post};
    let json = "application/json";
    let mut ops = vec![
        op(
            Post,
            "/v1/chat/completions",
            "openai",
            "Chat completion (JSON, or SSE with `stream: true`)",
        )
        .body(reference("ChatCompletionRequest"))
        .ok(json, reference("ChatCompletion"))
        .ok("text/event-stream", text()),
        op(
            Post,
            "/v1/completions",
            "openai",
            "Text completion (JSON, or SSE with `stream: true`)",
        )
        .body(reference("CompletionRequest"))
        .ok(json, reference("Completion"))
        .ok("text/event-stream", text()),
        op(Post, "/v1/embeddings", "openai", "Embeddings")
            .body(reference("EmbeddingRequest"))
            .ok(json, reference("EmbeddingResponse")),
        op(Get, "/v1/models", "openai", "Models").ok(json, reference("ModelList")),
        op(Get, "/v1/models/{id}", "openai", "One model").ok(json, reference("ModelObject")),
        op(
            Post,
            "/api/chat",
            "ollama",
            "Ollama chat (NDJSON, or JSON with `stream: false`)",
        )
        .body(any_object())
        .ok(json, any_object())
        .ok("application/x-ndjson", text())
        .errors(Errors::Ollama),
        op(
            Post,
            "/api/generate",
            "ollama",
            "Ollama generate (NDJSON, or JSON with `stream: false`)",
        )
        .body(any_object())
        .ok(json, any_object())
        .ok("application/x-ndjson", text())
        .errors(Errors::Ollama),
        op(Post, "/api/embed", "ollama", "Ollama embeddings (batch)")
            .body(any_object())
            .ok(json, any_object())
            .errors(Errors::Ollama),
        op(
            Post,
            "/api/embeddings",
            "ollama",
            "Ollama embeddings (legacy, one prompt)",
        )
        .body(any_object())
        .ok(json, any_object())
        .errors(Errors::Ollama),
        op(Get, "/api/tags", "ollama", "Ollama model list")
            .ok(json, any_object())
            .errors(Errors::Ollama),
        op(Get, "/api/ps", "ollama", "Ollama loaded models")
            .ok(json, any_object())
            .errors(Errors::Ollama),
        op(Post, "/api/show", "ollama", "Ollama model details")
            .body(any_object())
            .ok(json, any_object())
            .errors(Errors::Ollama),
        op(Get, "/api/version", "ollama", "Ollama version")
            .ok(json, any_object())
            .errors(Errors::Ollama),
        op(Get, "/health", "service", "Liveness")
            .ok(json, reference("Status"))
            .errors(Errors::None),
        op(
            Get,
            "/ready",
            "service",
            "Readiness (503 until preloads are ready)",
        )
        .ok(json, reference("Status"))
        .errors(Errors::None),
        op(Get, "/metrics", "service", "Prometheus metrics").ok("text/plain", text()),
        op(Get, "/openapi.json", "service", "This description")
            .ok(json, any_object())
            .errors(Errors::None),
        op(
            Get,
            "/admin/models",
            "admin",
            "Served models: state, memory, queue",
        )
        .ok(json, reference("AdminModelList"))
        .errors(Errors::Admin),
        op(
            Post,
            "/admin/models/{id}/load",
            "admin",
            "Load a model (waits until Ready)",
        )
        .body(reference("LoadBody"))
        .ok(json, reference("AdminModel"))
        .errors(Errors::Admin),
        op(Post, "/admin/models/{id}/unload", "admin", "Unload a model")
            .body(reference("UnloadBody"))
            .ok(json, reference("AdminModel"))
            .errors(Errors::Admin),
        op(Post, "/admin/models/{id}/pin", "admin", "Pin a model")
            .ok(json, reference("AdminModel"))
            .errors(Errors::Admin),
        op(Post, "/admin/models/{id}/unpin", "admin", "Unpin a model")
            .ok(json, reference("AdminModel"))
            .errors(Errors::Admin),
        op(Get, "/admin/memory", "admin", "Memory per device")
            .ok(json, any_object())
            .errors(Errors::Admin),
        op(
            Get,
            "/admin/keys",
            "admin",
            "API keys (ids and metadata, never secrets)",
        )
        .ok(json, any_object())
        .errors(Errors::Admin),
        op(
            Get,
            "/admin/sources",
            "admin",
            "Every [[retrieval.sources]] entry: state, counters, checkpoint, last error",
        )
        .ok(json, any_object())
        .errors(Errors::Admin),
        op(
            Get,
            "/admin/vector_stores/{id}/sync",
            "admin",
            "Progress of the sources writing to a store, and its file counts",
        )
        .ok(json, any_object())
        .errors(Errors::Admin),
        op(
            Post,
            "/admin/vector_stores/{id}/sync",
            "admin",
            "Start a sync of the sources writing to a store",
        )
        .accepted()
        .ok(json, any_object())
        .errors(Errors::Admin),
        op(
            Get,
            "/admin/ui",
            "admin",
            "The admin console (HTML; its data calls need the admin token)",
        )
        .ok("text/html", text())
        .errors(Errors::None),
    ];
    ops.extend(responses::ops());
    ops.extend(retrieval::ops());
    let mut paths = PathsBuilder::new();
    for o in ops {
        let (path, item) = o.build();
        paths = paths.path(path, item);
    }
    let mut components = ComponentsBuilder::new();
    components = add::<chat::ChatCompletionRequest>(components);
    components = add::<chat::ChatCompletion>(components);
    components = add::<completions::CompletionRequest>(components);
    components = add::<completions::Completion>(components);
    components = add::<embeddings::EmbeddingRequest>(components);
    components = add::<embeddings::EmbeddingResponse>(components);
    components = add::<models::ModelList>(components);
    components = add::<models::ModelObject>(components);
    components = add::<admin::AdminModelList>(components);
    components = add::<admin::AdminModel>(components);
    components = add::<admin::LoadBody>(components);
    components = add::<admin::UnloadBody>(components);
    components = add::<ErrorResponse>(components);
    components = add::<OllamaError>(components);
    components = add::<Status>(components);
    components = responses::components(components);
    components = retrieval::components(components);
    let bearer = || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
    components = components
        .security_scheme("api_key", bearer())
        .security_scheme("admin_token", bearer());
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("nfai")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "OpenAI- and Ollama-compatible inference, with an admin API. Errors use \
                     OpenAI's shape (Ollama's on /api).",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .tags(Some(
            ["openai", "ollama", "retrieval", "admin", "service"]
                .map(|t| TagBuilder::new().name(t).build()),
        ))
        .build()
}

/// The description as pretty JSON with a final newline (the form of docs/openapi.json).
pub fn document_json() -> String {
    let mut s = document().to_pretty_json().unwrap_or_else(|e| {
        format!("{{\"error\": \"the OpenAPI description did not serialize: {e}\"}}")
    });
    s.push('\n');
    s
}

/// `GET /openapi.json`.
pub async fn handler() -> impl IntoResponse {
    Json(document())
}

/// The schema of `T`, inlined (for tests and other modules' descriptions).
pub fn schema_of<T: PartialSchema>() -> RefOr<Schema> {
    T::schema()
}
