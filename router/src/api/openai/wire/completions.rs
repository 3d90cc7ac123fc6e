//! `POST /v1/completions` wire types.

use serde::{Deserialize, Serialize};

use super::{SamplingFields, StreamOptions, Usage};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: PromptInput,
    #[serde(flatten)]
    pub sampling: SamplingFields,
    /// At most the model's context length less the prompt (1,048,576 is the largest context).
    #[schema(minimum = 1, maximum = 1048576)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub echo: bool,
    pub logprobs: Option<i64>,
    pub suffix: Option<String>,
    pub best_of: Option<i64>,
    /// Extension: how long the model stays loaded after this request ("10m", seconds, negative
    /// for forever, 0 to unload when done).
    pub keep_alive: Option<serde_json::Value>,
}

/// `prompt`: a string, strings, token ids, or lists of token ids.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PromptInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<i64>),
    TokenLists(Vec<Vec<i64>>),
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Completion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    pub system_fingerprint: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CompletionChoice {
    pub text: String,
    pub index: usize,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}
