//! `POST /v1/chat/completions` wire types.

use serde::{Deserialize, Serialize};

use super::{SamplingFields, StreamOptions, Usage};
use crate::backend::structured::{Call, calls_text};
use crate::validate::{ContentInput, MessageInput, PartInput};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessageIn>,
    #[serde(flatten)]
    pub sampling: SamplingFields,
    /// At most the model's context length less the prompt (1,048,576 is the largest context).
    #[schema(minimum = 1, maximum = 1048576)]
    pub max_tokens: Option<i64>,
    /// At most the model's context length less the prompt (1,048,576 is the largest context).
    #[schema(minimum = 1, maximum = 1048576)]
    pub max_completion_tokens: Option<i64>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<i64>,
    pub tools: Option<Vec<serde_json::Value>>,
    pub tool_choice: Option<serde_json::Value>,
    /// Whether one answer may call several tools (default true).
    pub parallel_tool_calls: Option<bool>,
    pub functions: Option<Vec<serde_json::Value>>,
    pub response_format: Option<ResponseFormat>,
    /// Extension: how long the model stays loaded after this request ("10m", seconds, negative
    /// for forever, 0 to unload when done).
    pub keep_alive: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: String,
    /// For `json_schema`: `{name, schema, strict, description}`.
    pub json_schema: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatMessageIn {
    pub role: String,
    #[serde(default)]
    pub content: Option<MessageContent>,
    pub name: Option<String>,
    /// Calls an assistant turn made; written into the conversation as text (see
    /// `nfai_models::tool_prompt`).
    pub tool_calls: Option<Vec<ToolCallIn>>,
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ToolCallIn {
    pub function: FunctionCallIn,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct FunctionCallIn {
    pub name: String,
    /// The arguments as a JSON string.
    #[serde(default)]
    pub arguments: String,
}

impl From<ChatMessageIn> for MessageInput {
    fn from(m: ChatMessageIn) -> Self {
        let calls = m
            .tool_calls
            .unwrap_or_default()
            .iter()
            .map(|c| Call::from_string(c.function.name.as_str(), &c.function.arguments))
            .collect::<Vec<_>>();
        let calls = calls_text(&calls);
        let content = match m.content {
            None if !calls.is_empty() => ContentInput::Text(calls),
            None => ContentInput::Text(String::new()),
            Some(MessageContent::Text(t)) if !calls.is_empty() => ContentInput::Text(t + &calls),
            Some(MessageContent::Text(t)) => ContentInput::Text(t),
            Some(MessageContent::Parts(parts)) => ContentInput::Parts(
                parts
                    .into_iter()
                    .map(|p| PartInput {
                        kind: p.kind,
                        text: p.text,
                    })
                    .collect(),
            ),
        };
        MessageInput {
            role: m.role,
            content,
        }
    }
}

/// Message content: a string or a list of typed parts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
    pub system_fingerprint: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatChoice {
    pub index: usize,
    pub message: ChatMessageOut,
    pub logprobs: Option<()>,
    pub finish_reason: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatMessageOut {
    pub role: &'static str,
    /// `null` when the answer is a tool call.
    pub content: Option<String>,
    pub refusal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallOut>>,
}

/// A tool call in an answer (in a stream chunk, with its `index`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ToolCallOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCallOut,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FunctionCallOut {
    pub name: String,
    /// The arguments as a JSON string, as OpenAI sends them.
    pub arguments: String,
}

#[derive(Debug, Serialize)]
pub struct ChatCompletionChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
    pub system_fingerprint: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ChunkChoice<'a> {
    pub index: usize,
    pub delta: Delta<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Default, Serialize)]
pub struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallOut>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assistant_turn_keeps_its_calls_as_written() {
        let m: ChatMessageIn = serde_json::from_value(serde_json::json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {
                    "name": "get_order_status",
                    "arguments": "{\"order_id\": 37896812804689686123456789}"}},
                {"id": "call_2", "type": "function", "function": {
                    "name": "note", "arguments": "not json"}}
            ]
        }))
        .unwrap();
        let ContentInput::Text(text) = MessageInput::from(m).content else {
            panic!("calls are text");
        };
        assert_eq!(
            text,
            "<tool_call>{\"name\":\"get_order_status\",\"arguments\":{\"order_id\": 37896812804689686123456789}}\
             <tool_call>{\"name\":\"note\",\"arguments\":\"not json\"}"
        );
    }
}
