//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json` and kept in
//! `docs/openapi.json` (`nfai openapi > docs/openapi.json`; a test compares them).
//!
//! Request and response bodies are the wire types' own schemas (`utoipa::ToSchema` derives on
//! `api::openai::wire`, `api::admin::wire`); this module lists the routes, their statuses and
//! the error shapes. Ollama's routes are described with open objects; the files and vector
//! store routes and their objects are in [`retrieval`].

mod retrieval;

use axum::Json;
use axum::response::IntoResponse;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, KnownFormat, ObjectBuilder,
    OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Ref, RefOr, Required, ResponseBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::{PartialSchema, ToSchema};

use super::admin::wire as admin;
use super::openai::wire::{chat, completions, embeddings, models};

/// OpenAI's error shape (`{"error": {…}}`).
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "described, never built: errors are made by crate::error"
)]
struct ErrorResponse {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct ErrorDetail {
    message: String,
    /// `invalid_request_error`, `authentication_error`, `rate_limit_error`, `server_error`.
    #[schema(rename = "type")]
    kind: String,
    /// The field at fault, as a path (`messages[0].content`).
    param: Option<String>,
    code: Option<String>,
}

/// Ollama's error shape.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct OllamaError {
    error: String,
}

/// `/health` and `/ready`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct Status {
    /// `ok`, `ready` or `not_ready`.
    status: String,
}

fn add<T: ToSchema>(c: ComponentsBuilder) -> ComponentsBuilder {
    let mut deps = Vec::new();
    T::schemas(&mut deps);
    c.schema(T::name(), T::schema()).schemas_from_iter(deps)
}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn any_object() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new().schema_type(Type::Object).build(),
    ))
}

fn text() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new().schema_type(Type::String).build(),
    ))
}

/// Bytes (a download).
fn binary() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .build(),
    ))
}

/// The schema of a query parameter of the list routes, by name.
fn query_schema(name: &str) -> RefOr<Schema> {
    let b = ObjectBuilder::new();
    let b = match name {
        "limit" => b
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(100)),
        "order" => b
            .schema_type(Type::String)
            .enum_values(Some(["asc", "desc"])),
        "filter" => b.schema_type(Type::String).enum_values(Some([
            "in_progress",
            "completed",
            "failed",
            "cancelled",
        ])),
        _ => b.schema_type(Type::String),
    };
    RefOr::T(Schema::Object(b.build()))
}

/// What a route answers besides its 200.
#[derive(Clone, Copy, PartialEq)]
enum Errors {
    OpenAi,
    Ollama,
    Admin,
    None,
}

struct Op {
    method: HttpMethod,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    body: Option<RefOr<Schema>>,
    /// The content type of `body`.
    body_type: &'static str,
    /// `(content type, schema)` of the success answer.
    ok: Vec<(&'static str, RefOr<Schema>)>,
    /// The success status: 200, or 202 for work that goes on after the answer.
    ok_status: &'static str,
    errors: Errors,
    /// Optional query parameters.
    query: Vec<&'static str>,
}

fn op(method: HttpMethod, path: &'static str, tag: &'static str, summary: &'static str) -> Op {
    Op {
        method,
        path,
        tag,
        summary,
        body: None,
        body_type: "application/json",
        ok: Vec::new(),
        ok_status: "200",
        errors: Errors::OpenAi,
        query: Vec::new(),
    }
}

impl Op {
    fn body(mut self, s: RefOr<Schema>) -> Self {
        self.body = Some(s);
        self
    }
    fn ok(mut self, content_type: &'static str, s: RefOr<Schema>) -> Self {
        self.ok.push((content_type, s));
        self
    }
    fn errors(mut self, e: Errors) -> Self {
        self.errors = e;
        self
    }
    /// Success is 202 Accepted (the work goes on after the answer).
    fn accepted(mut self) -> Self {
        self.ok_status = "202";
        self
    }
    fn multipart(mut self, s: RefOr<Schema>) -> Self {
        self.body = Some(s);
        self.body_type = "multipart/form-data";
        self
    }
    fn query(mut self, names: &[&'static str]) -> Self {
        self.query.extend_from_slice(names);
        self
    }

    fn build(self) -> (String, PathItem) {
        let mut ok = ResponseBuilder::new().description(if self.ok_status == "202" {
            "Accepted: the work goes on after the answer."
        } else {
            "Success."
        });
        for (ct, s) in self.ok {
            ok = ok.content(ct, ContentBuilder::new().schema(Some(s)).build());
        }
        let mut b = OperationBuilder::new()
            .tag(self.tag)
            .summary(Some(self.summary))
            .response(self.ok_status, ok.build());
        if let Some(body) = self.body {
            b = b.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        self.body_type,
                        ContentBuilder::new().schema(Some(body)).build(),
                    )
                    .build(),
            ));
        }
        // `{name}` segments of the path.
        for name in self
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        {
            b = b.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(text()))
                    .build(),
            );
        }
        for name in self.query {
            b = b.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .schema(Some(query_schema(name)))
                    .build(),
            );
        }
        let error = |d: &str, name: &str| {
            ResponseBuilder::new()
                .description(d)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(reference(name))).build(),
                )
                .build()
        };
        let shape = match self.errors {
            Errors::Ollama => "OllamaError",
            _ => "ErrorResponse",
        };
        match self.errors {
            Errors::None => {}
            Errors::Admin => {
                b = b
                    .security(SecurityRequirement::new(
                        "admin_token",
                        Vec::<String>::new(),
                    ))
                    .response(
                        "401",
                        error(
                            "The admin token is missing or wrong, or none is configured.",
                            shape,
                        ),
                    )
                    .response(
                        "default",
                        error("An error (see the README's table).", shape),
                    );
            }
            Errors::OpenAi | Errors::Ollama => {
                b = b
                    .security(SecurityRequirement::new("api_key", Vec::<String>::new()))
                    .security(SecurityRequirement::default())
                    .response(
                        "401",
                        error(
                            "An API key is required (once keys exist) and is missing or wrong.",
                            shape,
                        ),
                    )
                    .response(
                        "default",
                        error("An error (see the README's table).", shape),
                    );
            }
        }
        let item = PathItem::new(self.method, b.build());
        (self.path.to_string(), item)
    }
}

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
