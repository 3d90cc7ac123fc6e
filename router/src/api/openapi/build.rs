//! The builders of the OpenAPI description: operations ([`Op`]: path, method, body, success
//! and error answers, query parameters), the error shapes, and schema helpers, shared by the
//! description's route lists.

use utoipa::ToSchema;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, KnownFormat, ObjectBuilder, PathItem, Ref,
    RefOr, Required, ResponseBuilder, Schema, SchemaFormat, Type,
};

/// OpenAI's error shape (`{"error": {…}}`).
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "described, never built: errors are made by crate::error"
)]
pub(super) struct ErrorResponse {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
pub(super) struct ErrorDetail {
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
pub(super) struct OllamaError {
    error: String,
}

/// `/health` and `/ready`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
pub(super) struct Status {
    /// `ok`, `ready` or `not_ready`.
    status: String,
}

pub(super) fn add<T: ToSchema>(c: ComponentsBuilder) -> ComponentsBuilder {
    let mut deps = Vec::new();
    T::schemas(&mut deps);
    c.schema(T::name(), T::schema()).schemas_from_iter(deps)
}

pub(super) fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

pub(super) fn any_object() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new().schema_type(Type::Object).build(),
    ))
}

pub(super) fn text() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new().schema_type(Type::String).build(),
    ))
}

/// Bytes (a download).
pub(super) fn binary() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .build(),
    ))
}

/// The schema of a query parameter of the list routes, by name.
pub(super) fn query_schema(name: &str) -> RefOr<Schema> {
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
pub(super) enum Errors {
    OpenAi,
    Ollama,
    Admin,
    None,
}

pub(super) struct Op {
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

pub(super) fn op(
    method: HttpMethod,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
) -> Op {
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
    pub(super) fn body(mut self, s: RefOr<Schema>) -> Self {
        self.body = Some(s);
        self
    }
    pub(super) fn ok(mut self, content_type: &'static str, s: RefOr<Schema>) -> Self {
        self.ok.push((content_type, s));
        self
    }
    pub(super) fn errors(mut self, e: Errors) -> Self {
        self.errors = e;
        self
    }
    /// Success is 202 Accepted (the work goes on after the answer).
    pub(super) fn accepted(mut self) -> Self {
        self.ok_status = "202";
        self
    }
    pub(super) fn multipart(mut self, s: RefOr<Schema>) -> Self {
        self.body = Some(s);
        self.body_type = "multipart/form-data";
        self
    }
    pub(super) fn query(mut self, names: &[&'static str]) -> Self {
        self.query.extend_from_slice(names);
        self
    }

    pub(super) fn build(self) -> (String, PathItem) {
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
