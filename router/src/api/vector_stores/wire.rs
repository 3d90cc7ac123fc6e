//! OpenAI's vector store objects (`vector_store`, `vector_store.file`,
//! `vector_store.files_batch`, `vector_store.search_results.page`) and request bodies, whose
//! schemas the OpenAPI description takes (the objects' are in `api::openapi::retrieval`).

use nfai_retrieval::SearchHit;
use nfai_retrieval::records::StoreFileRecord;
use nfai_retrieval::service::{BatchView, FileCounts, StoreView};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// `POST /v1/vector_stores`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct CreateStoreBody {
    pub name: Option<String>,
    pub file_ids: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub expires_after: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub chunking_strategy: Option<Value>,
    pub description: Option<String>,
    /// Extension: the embedding model of the store (default multilingual-e5-small).
    pub embedding_model: Option<String>,
}

/// `POST /v1/vector_stores/{id}/files`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct AddFileBody {
    pub file_id: String,
    /// Up to 16 keys; values are strings, numbers or booleans.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub chunking_strategy: Option<Value>,
}

/// `POST /v1/vector_stores/{id}/files/{file_id}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct UpdateFileBody {
    /// Up to 16 keys; values are strings, numbers or booleans.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

/// `POST /v1/vector_stores/{id}/file_batches`: `file_ids` with shared attributes, or `files`
/// each with its own.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct CreateBatchBody {
    pub file_ids: Option<Vec<String>>,
    pub files: Option<Vec<AddFileBody>>,
    /// Up to 16 keys; values are strings, numbers or booleans.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub chunking_strategy: Option<Value>,
}

/// `query`: one string or several.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum QueryInput {
    One(String),
    Many(Vec<String>),
}

/// `ranking_options`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct RankingOptions {
    pub ranker: Option<String>,
    pub score_threshold: Option<f32>,
}

/// `POST /v1/vector_stores/{id}/search`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SearchBody {
    pub query: QueryInput,
    /// A comparison (`{"type": "eq", "key", "value"}`) or a compound (`and`, `or`) filter.
    #[schema(value_type = Option<Object>)]
    pub filters: Option<Value>,
    #[schema(minimum = 1, maximum = 50)]
    pub max_num_results: Option<i64>,
    pub ranking_options: Option<RankingOptions>,
    pub rewrite_query: Option<bool>,
    /// nfai's extension: re-read hits of source rows from the database (see
    /// `crate::retrieval::fresh`).
    #[serde(default)]
    pub fresh: bool,
}

/// A store's `file_counts` object.
pub fn counts(c: FileCounts) -> Value {
    json!({
        "in_progress": c.in_progress,
        "completed": c.completed,
        "failed": c.failed,
        "cancelled": c.cancelled,
        "total": c.total,
    })
}

pub fn store(v: StoreView) -> Value {
    let r = v.record;
    json!({
        "id": r.id,
        "object": "vector_store",
        "created_at": r.created_at,
        "name": r.name,
        "description": null,
        "usage_bytes": v.usage_bytes,
        "file_counts": counts(v.file_counts),
        "status": v.status,
        "expires_after": r.expires_after,
        "expires_at": v.expires_at,
        "last_active_at": r.last_active_at,
        "metadata": r.metadata,
        "embedding_model": r.model,
    })
}

pub fn store_file(f: StoreFileRecord) -> Value {
    json!({
        "id": f.file_id,
        "object": "vector_store.file",
        "created_at": f.created_at,
        "vector_store_id": f.store_id,
        "status": f.status.as_str(),
        "last_error": f.last_error.map(|e| json!({"code": e.code, "message": e.message})),
        "usage_bytes": f.usage_bytes,
        "attributes": f.attributes,
        "chunking_strategy": f.chunking_strategy,
    })
}

pub fn batch(b: BatchView) -> Value {
    json!({
        "id": b.record.id,
        "object": "vector_store.files_batch",
        "created_at": b.record.created_at,
        "vector_store_id": b.record.store_id,
        "status": b.status,
        "file_counts": counts(b.file_counts),
    })
}

pub fn search_page(queries: Vec<String>, hits: &[SearchHit]) -> Value {
    let data: Vec<Value> = hits
        .iter()
        .map(|h| {
            let attributes = h.payload.attributes_json();
            json!({
                "file_id": h.payload.file_id,
                "filename": h.payload.filename,
                "score": h.score,
                "attributes": attributes,
                "content": [{"type": "text", "text": h.payload.text}],
            })
        })
        .collect();
    json!({
        "object": "vector_store.search_results.page",
        "search_query": queries,
        "data": data,
        "has_more": false,
        "next_page": null,
    })
}
