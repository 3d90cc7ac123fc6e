//! What the files and vector store routes share: the service from the state, list query
//! parameters, and OpenAI's list envelope.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use nfai_retrieval::service::{ListQuery, Page, RetrievalService};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// The retrieval service, or 503 when this server runs without one.
pub fn service(state: &AppState) -> Result<&RetrievalService, ApiError> {
    state.retrieval().ok_or_else(|| {
        ApiError::unavailable("Files and vector stores are not enabled on this server.")
    })
}

/// Query parameters of the list routes.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub order: Option<String>,
    pub after: Option<String>,
    pub before: Option<String>,
    /// `GET /v1/files`: only this purpose.
    pub purpose: Option<String>,
    /// Store file lists: only this status.
    pub filter: Option<String>,
}

impl ListParams {
    /// The parsed parameters, or a 400 naming the malformed one.
    pub fn from_query(q: Result<Query<Self>, QueryRejection>) -> Result<Self, ApiError> {
        q.map(|Query(p)| p)
            .map_err(|e| ApiError::invalid("query", format!("Invalid query parameters: {e}")))
    }

    pub fn list_query(&self) -> Result<ListQuery, ApiError> {
        Ok(ListQuery::parse(
            self.limit,
            self.order.as_deref(),
            self.after.clone(),
            self.before.clone(),
        )?)
    }
}

/// OpenAI's list object over a page, with `first_id` and `last_id` read by `id`.
pub fn list<T>(page: Page<T>, to_json: impl Fn(T) -> Value) -> Value {
    let data: Vec<Value> = page.data.into_iter().map(to_json).collect();
    let id = |v: Option<&Value>| v.and_then(|v| v.get("id")).cloned().unwrap_or(Value::Null);
    json!({
        "object": "list",
        "first_id": id(data.first()),
        "last_id": id(data.last()),
        "has_more": page.has_more,
        "data": data,
    })
}
