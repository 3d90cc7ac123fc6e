//! The Responses API routes of the OpenAPI description (`POST /v1/responses`, stored
//! responses), and the schemas of the objects they answer (described here; the routes build
//! them as JSON in `api::responses::object`).

use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::{ComponentsBuilder, HttpMethod};

use super::build::{Op, add, op, reference, text};

/// A `file_search` tool.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct FileSearchTool {
    /// `file_search`.
    #[schema(rename = "type")]
    kind: String,
    /// The vector stores to search (1 to 2).
    vector_store_ids: Vec<String>,
    /// An attribute filter, as in a vector store search.
    filters: Option<Value>,
    #[schema(minimum = 1, maximum = 50)]
    max_num_results: Option<i64>,
    ranking_options: Option<Value>,
    /// Extension: re-read hits of database rows before answering.
    fresh: Option<bool>,
}

/// `POST /v1/responses`: the subset file search needs.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct CreateResponseBody {
    model: String,
    /// A string, or a list of messages (`{role, content}`; roles `user`, `assistant`,
    /// `system`, `developer`).
    input: Value,
    instructions: Option<String>,
    #[schema(minimum = 1, maximum = 1048576)]
    max_output_tokens: Option<i64>,
    #[schema(minimum = 0, maximum = 2)]
    temperature: Option<f32>,
    #[schema(minimum = 0, maximum = 1)]
    top_p: Option<f32>,
    /// SSE events (`response.created` … `response.completed`) instead of one object.
    stream: Option<bool>,
    /// Keep the response for `GET /v1/responses/{id}` and `previous_response_id`.
    store: Option<bool>,
    previous_response_id: Option<String>,
    /// Only `file_search_call.results`.
    include: Option<Vec<String>>,
    tools: Option<Vec<FileSearchTool>>,
    /// `auto`, `none`, `required`, or `{"type": "file_search"}`.
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    metadata: Option<Value>,
    user: Option<String>,
    text: Option<Value>,
    truncation: Option<String>,
}

/// A `file_citation` annotation: `index` is the character offset its marker stood at.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct FileCitation {
    /// `file_citation`.
    #[schema(rename = "type")]
    kind: String,
    index: u64,
    file_id: String,
    filename: String,
}

/// An `output_text` content part.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct OutputText {
    /// `output_text`.
    #[schema(rename = "type")]
    kind: String,
    text: String,
    annotations: Vec<FileCitation>,
}

/// An output item: a `file_search_call` (`queries`, `results` when included) or the
/// assistant's `message` (`role`, `content`).
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct OutputItem {
    id: String,
    /// `file_search_call` or `message`.
    #[schema(rename = "type")]
    kind: String,
    /// `in_progress`, `searching`, `completed`, `incomplete` or `failed`.
    status: String,
    queries: Option<Vec<String>>,
    /// Each `{file_id, filename, score, text, attributes}`.
    results: Option<Vec<Value>>,
    role: Option<String>,
    content: Option<Vec<OutputText>>,
}

/// Tokens read and written.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct ResponseUsage {
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
    input_tokens_details: Option<Value>,
    output_tokens_details: Option<Value>,
}

/// `{"object": "response", …}`; the request's own fields (`instructions`, `tools`, `store`,
/// `temperature`, …) are answered back beside these.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct ResponseObject {
    id: String,
    /// `response`.
    object: String,
    created_at: u64,
    /// `completed`, `incomplete`, `in_progress` or `failed`.
    status: String,
    model: String,
    output: Vec<OutputItem>,
    usage: Option<ResponseUsage>,
    error: Option<Value>,
    incomplete_details: Option<Value>,
}

/// A deleted stored response.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct ResponseDeleted {
    id: String,
    /// `response.deleted`.
    object: String,
    deleted: bool,
}

/// The Responses API operations.
pub fn ops() -> Vec<Op> {
    use HttpMethod::{Delete, Get, Post};
    let json = "application/json";
    let tag = "openai";
    vec![
        op(
            Post,
            "/v1/responses",
            tag,
            "A response, grounded by `file_search` with file citations (JSON, or SSE with \
             `stream: true`)",
        )
        .body(reference("CreateResponseBody"))
        .ok(json, reference("ResponseObject"))
        .ok("text/event-stream", text()),
        op(Get, "/v1/responses/{id}", tag, "A stored response")
            .ok(json, reference("ResponseObject")),
        op(
            Delete,
            "/v1/responses/{id}",
            tag,
            "Delete a stored response",
        )
        .ok(json, reference("ResponseDeleted")),
    ]
}

/// The schemas the operations name.
pub fn components(mut c: ComponentsBuilder) -> ComponentsBuilder {
    c = add::<CreateResponseBody>(c);
    c = add::<ResponseObject>(c);
    add::<ResponseDeleted>(c)
}
