//! The files and vector store routes of the OpenAPI description, and the schemas of the objects
//! they answer (described here; the routes build them as JSON in `api::files::wire` and
//! `api::vector_stores::wire`, whose request bodies carry their own schemas).

use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::{ComponentsBuilder, HttpMethod};

use super::build::{Op, add, binary, op, reference};
use crate::api::vector_stores::wire as vs;

/// `{"object": "file", …}`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct FileObject {
    id: String,
    /// `file`.
    object: String,
    bytes: u64,
    created_at: u64,
    expires_at: Option<u64>,
    filename: String,
    purpose: String,
    /// `processed`.
    status: String,
    status_details: Option<String>,
}

/// `POST /v1/files`: a multipart form.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct FileUpload {
    /// The file's bytes, with a file name.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// What the file is for (`assistants`, `user_data`, …).
    purpose: String,
}

/// A deleted file, vector store or vector store file.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct Deleted {
    id: String,
    /// `file`, `vector_store.deleted` or `vector_store.file.deleted`.
    object: String,
    deleted: bool,
}

/// Files by status.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct FileCounts {
    in_progress: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
    total: u64,
}

/// `{"object": "vector_store", …}`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct VectorStoreObject {
    id: String,
    /// `vector_store`.
    object: String,
    created_at: u64,
    name: Option<String>,
    description: Option<String>,
    usage_bytes: u64,
    file_counts: FileCounts,
    /// `in_progress`, `completed` or `expired`.
    status: String,
    expires_after: Option<Value>,
    expires_at: Option<u64>,
    last_active_at: Option<u64>,
    metadata: Option<Value>,
    /// Extension: the store's embedding model.
    embedding_model: Option<String>,
}

/// Why a file could not be indexed.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct LastError {
    code: String,
    message: String,
}

/// `{"object": "vector_store.file", …}`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct VectorStoreFileObject {
    id: String,
    /// `vector_store.file`.
    object: String,
    created_at: u64,
    vector_store_id: String,
    /// `in_progress`, `completed`, `failed` or `cancelled`.
    status: String,
    last_error: Option<LastError>,
    usage_bytes: u64,
    attributes: Option<Value>,
    chunking_strategy: Option<Value>,
}

/// `{"object": "vector_store.files_batch", …}`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct FileBatchObject {
    id: String,
    /// `vector_store.files_batch`.
    object: String,
    created_at: u64,
    vector_store_id: String,
    /// `in_progress`, `completed`, `failed` or `cancelled`.
    status: String,
    file_counts: FileCounts,
}

/// A piece of text.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct TextContent {
    /// `text`.
    #[schema(rename = "type")]
    kind: String,
    text: String,
}

/// One search hit.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct SearchResult {
    file_id: String,
    filename: String,
    score: f64,
    attributes: Option<Value>,
    content: Vec<TextContent>,
}

/// `{"object": "vector_store.search_results.page", …}`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct SearchResultsPage {
    /// `vector_store.search_results.page`.
    object: String,
    search_query: Vec<String>,
    data: Vec<SearchResult>,
    has_more: bool,
    next_page: Option<String>,
}

/// `{"object": "vector_store.file_content.page", …}`: the text of a file in a store.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct FileContentPage {
    /// `vector_store.file_content.page`.
    object: String,
    data: Vec<TextContent>,
    has_more: bool,
    next_page: Option<String>,
}

/// `POST /v1/vector_stores/{id}`: fields to change; `null` clears one.
#[derive(ToSchema)]
#[allow(dead_code, reason = "described, never built")]
struct ModifyStoreBody {
    name: Option<String>,
    metadata: Option<Value>,
    expires_after: Option<Value>,
}

macro_rules! list_of {
    ($name:ident, $item:ty) => {
        /// OpenAI's list object.
        #[derive(ToSchema)]
        #[allow(dead_code, reason = "described, never built")]
        struct $name {
            /// `list`.
            object: String,
            data: Vec<$item>,
            first_id: Option<String>,
            last_id: Option<String>,
            has_more: bool,
        }
    };
}

list_of!(FileList, FileObject);
list_of!(VectorStoreList, VectorStoreObject);
list_of!(VectorStoreFileList, VectorStoreFileObject);

/// The query parameters of a list route.
const LIST: &[&str] = &["limit", "order", "after", "before"];

/// The files and vector store operations.
pub fn ops() -> Vec<Op> {
    use HttpMethod::{Delete, Get, Post};
    let json = "application/json";
    let tag = "retrieval";
    vec![
        op(
            Post,
            "/v1/files",
            tag,
            "Upload a file (multipart: `file`, `purpose`)",
        )
        .multipart(reference("FileUpload"))
        .ok(json, reference("FileObject")),
        op(Get, "/v1/files", tag, "Files, newest first")
            .query(LIST)
            .query(&["purpose"])
            .ok(json, reference("FileList")),
        op(Get, "/v1/files/{id}", tag, "One file").ok(json, reference("FileObject")),
        op(Delete, "/v1/files/{id}", tag, "Delete a file").ok(json, reference("Deleted")),
        op(Get, "/v1/files/{id}/content", tag, "A file's bytes")
            .ok("application/octet-stream", binary()),
        op(Post, "/v1/vector_stores", tag, "Create a vector store")
            .body(reference("CreateStoreBody"))
            .ok(json, reference("VectorStoreObject")),
        op(Get, "/v1/vector_stores", tag, "Vector stores")
            .query(LIST)
            .ok(json, reference("VectorStoreList")),
        op(Get, "/v1/vector_stores/{id}", tag, "One vector store")
            .ok(json, reference("VectorStoreObject")),
        op(Post, "/v1/vector_stores/{id}", tag, "Modify a vector store")
            .body(reference("ModifyStoreBody"))
            .ok(json, reference("VectorStoreObject")),
        op(
            Delete,
            "/v1/vector_stores/{id}",
            tag,
            "Delete a vector store",
        )
        .ok(json, reference("Deleted")),
        op(
            Post,
            "/v1/vector_stores/{id}/search",
            tag,
            "Search a vector store",
        )
        .body(reference("SearchBody"))
        .ok(json, reference("SearchResultsPage")),
        op(
            Post,
            "/v1/vector_stores/{id}/files",
            tag,
            "Add a file to a vector store",
        )
        .body(reference("AddFileBody"))
        .ok(json, reference("VectorStoreFileObject")),
        op(
            Get,
            "/v1/vector_stores/{id}/files",
            tag,
            "A vector store's files",
        )
        .query(LIST)
        .query(&["filter"])
        .ok(json, reference("VectorStoreFileList")),
        op(
            Get,
            "/v1/vector_stores/{id}/files/{file_id}",
            tag,
            "One file of a vector store",
        )
        .ok(json, reference("VectorStoreFileObject")),
        op(
            Post,
            "/v1/vector_stores/{id}/files/{file_id}",
            tag,
            "Change a file's attributes",
        )
        .body(reference("UpdateFileBody"))
        .ok(json, reference("VectorStoreFileObject")),
        op(
            Delete,
            "/v1/vector_stores/{id}/files/{file_id}",
            tag,
            "Remove a file from a vector store",
        )
        .ok(json, reference("Deleted")),
        op(
            Get,
            "/v1/vector_stores/{id}/files/{file_id}/content",
            tag,
            "The text of a file in a vector store",
        )
        .ok(json, reference("FileContentPage")),
        op(
            Post,
            "/v1/vector_stores/{id}/file_batches",
            tag,
            "Add files to a vector store in one batch",
        )
        .body(reference("CreateBatchBody"))
        .ok(json, reference("FileBatchObject")),
        op(
            Get,
            "/v1/vector_stores/{id}/file_batches/{batch_id}",
            tag,
            "One file batch",
        )
        .ok(json, reference("FileBatchObject")),
        op(
            Post,
            "/v1/vector_stores/{id}/file_batches/{batch_id}/cancel",
            tag,
            "Cancel a file batch",
        )
        .ok(json, reference("FileBatchObject")),
        op(
            Get,
            "/v1/vector_stores/{id}/file_batches/{batch_id}/files",
            tag,
            "A file batch's files",
        )
        .query(LIST)
        .query(&["filter"])
        .ok(json, reference("VectorStoreFileList")),
    ]
}

/// The schemas the operations name.
pub fn components(mut c: ComponentsBuilder) -> ComponentsBuilder {
    c = add::<FileObject>(c);
    c = add::<FileUpload>(c);
    c = add::<FileList>(c);
    c = add::<Deleted>(c);
    c = add::<VectorStoreObject>(c);
    c = add::<VectorStoreList>(c);
    c = add::<ModifyStoreBody>(c);
    c = add::<VectorStoreFileObject>(c);
    c = add::<VectorStoreFileList>(c);
    c = add::<FileBatchObject>(c);
    c = add::<SearchResultsPage>(c);
    c = add::<FileContentPage>(c);
    c = add::<vs::CreateStoreBody>(c);
    c = add::<vs::AddFileBody>(c);
    c = add::<vs::UpdateFileBody>(c);
    c = add::<vs::CreateBatchBody>(c);
    add::<vs::SearchBody>(c)
}
