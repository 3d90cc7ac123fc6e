//! `GET /v1/models` wire types.

use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

/// A model as the SDKs parse it, plus nfai's extension fields.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelObject {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
    /// `chat` or `embedding`.
    pub kind: &'static str,
    /// Residency: `ready`, `loading`, `unloading`, `unloaded`, `failed`, or `not_served`.
    pub state: &'static str,
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length: Option<usize>,
}
