//! Ollama's wire types: request bodies as clients send them (unknown fields ignored, as Ollama
//! does) with their conversion into `crate::validate`'s inputs, and the answers' bodies.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::structured::{Call, calls_text};
use crate::validate::{
    self, ContentInput, FieldError, GenerationOptions, KeepAlive, MessageInput, SamplingInput,
};

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
pub struct Options {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i64>,
    pub seed: Option<i64>,
    pub num_predict: Option<i64>,
    pub stop: Option<Vec<String>>,
    pub repeat_penalty: Option<f32>,
    pub repeat_last_n: Option<i64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub num_ctx: Option<i64>,
}

impl Options {
    /// Validated generation options (the same range checks as the OpenAI API).
    pub fn generation(
        &self,
        keep: Option<&Value>,
        stream: bool,
    ) -> Result<GenerationOptions, FieldError> {
        let input = SamplingInput {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            seed: self.seed,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            repetition_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            stop: self.stop.clone().unwrap_or_default(),
            ..Default::default()
        };
        let (sampling, stop) = validate::sampling(&input)?;
        Ok(GenerationOptions {
            sampling,
            stop,
            max_tokens: self.num_predict.filter(|&n| n >= 1).map(|n| n as usize),
            max_tokens_param: "options.num_predict",
            ignore_eos: false,
            keep_alive: keep_alive(keep)?,
            stream,
            deadline: crate::context::deadline(),
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: String,
    pub images: Option<Vec<Value>>,
    /// Calls an assistant turn made (`[{"function": {"name", "arguments": {…}}}]`), written into
    /// the conversation as text.
    pub tool_calls: Option<Vec<Value>>,
}

impl From<Message> for MessageInput {
    fn from(m: Message) -> Self {
        let calls: Vec<Call> = m
            .tool_calls
            .unwrap_or_default()
            .iter()
            .map(|call| {
                let f = &call["function"];
                let name = f["name"].as_str().unwrap_or_default();
                Call::new(name, f["arguments"].to_string())
            })
            .collect();
        let mut content = m.content;
        content.push_str(&calls_text(&calls));
        MessageInput {
            role: m.role,
            content: ContentInput::Text(content),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default = "yes")]
    pub stream: bool,
    #[serde(default)]
    pub options: Options,
    pub keep_alive: Option<Value>,
    pub format: Option<Value>,
    pub tools: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
pub struct GenerateRequest {
    pub model: String,
    #[serde(default)]
    pub prompt: String,
    pub system: Option<String>,
    #[serde(default)]
    pub raw: bool,
    #[serde(default = "yes")]
    pub stream: bool,
    #[serde(default)]
    pub options: Options,
    pub keep_alive: Option<Value>,
    pub format: Option<Value>,
    pub images: Option<Vec<Value>>,
    pub suffix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EmbedInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub struct EmbedRequest {
    pub model: String,
    pub input: EmbedInput,
    pub truncate: Option<bool>,
    pub dimensions: Option<usize>,
    pub keep_alive: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub prompt: String,
    pub keep_alive: Option<Value>,
}

/// `keep_alive` as Ollama clients send it (`"5m"`, seconds, negative for forever).
pub fn keep_alive(v: Option<&Value>) -> Result<Option<KeepAlive>, FieldError> {
    validate::keep_alive(v.filter(|v| !v.is_null()))
}

/// Refuses what nfai cannot do, by name.
pub fn refuse_unsupported(images: bool) -> Result<(), FieldError> {
    if images {
        return Err(FieldError::unsupported(
            "images",
            "Images are not supported.",
        ));
    }
    Ok(())
}

/// A message of an `/api/chat` answer.
#[derive(Debug, Serialize)]
pub struct MessageOut<'a> {
    pub role: &'static str,
    pub content: &'a str,
    /// `[{"function": {"name", "arguments": {…}}}]` when the answer is a tool call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
}

/// One NDJSON line (or the whole body) of `/api/chat` and `/api/generate`; the counts are set
/// on the final line only.
#[derive(Debug, Serialize)]
pub struct GenerateLine<'a> {
    pub model: &'a str,
    pub created_at: String,
    /// `/api/chat`'s text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageOut<'a>>,
    /// `/api/generate`'s text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<&'a str>,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<&'static str>,
    #[serde(flatten)]
    pub counts: Option<Counts>,
}

/// The timings and token counts of a final line (durations in nanoseconds).
#[derive(Debug, Serialize)]
pub struct Counts {
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: usize,
    pub prompt_eval_duration: u64,
    pub eval_count: usize,
    pub eval_duration: u64,
}

/// An error line ending an NDJSON stream.
#[derive(Debug, Serialize)]
pub struct ErrorLine<'a> {
    pub error: &'a str,
}

/// `/api/embed`'s answer.
#[derive(Debug, Serialize)]
pub struct EmbedResponse {
    pub model: String,
    pub embeddings: Vec<Vec<f32>>,
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: usize,
}

/// `/api/embeddings`' answer.
#[derive(Debug, Serialize)]
pub struct EmbeddingsResponse {
    pub embedding: Vec<f32>,
}

/// A model's `details` in `/api/tags`, `/api/ps` and `/api/show`.
#[derive(Debug, Serialize)]
pub struct Details<'a> {
    pub parent_model: &'static str,
    pub format: &'a str,
    pub family: &'a str,
    pub families: [&'a str; 1],
    pub parameter_size: &'a str,
    pub quantization_level: &'a str,
}

impl<'a> Details<'a> {
    pub fn new(format: &'a str, family: &'a str, size: &'a str, quant: &'a str) -> Self {
        Self {
            parent_model: "",
            format,
            family,
            families: [family],
            parameter_size: size,
            quantization_level: quant,
        }
    }
}

/// One model of `/api/tags`.
#[derive(Debug, Serialize)]
pub struct TagModel<'a> {
    pub name: &'a str,
    pub model: &'a str,
    pub modified_at: &'a str,
    pub size: u64,
    pub digest: &'static str,
    pub details: Details<'a>,
}

/// One model of `/api/ps`.
#[derive(Debug, Serialize)]
pub struct PsModel<'a> {
    pub name: &'a str,
    pub model: &'a str,
    pub size: u64,
    pub digest: &'static str,
    pub details: Details<'a>,
    pub expires_at: String,
    pub size_vram: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length: Option<usize>,
}

/// `/api/tags` and `/api/ps`.
#[derive(Debug, Serialize)]
pub struct ModelList<T> {
    pub models: Vec<T>,
}

/// `/api/version`.
#[derive(Debug, Serialize)]
pub struct Version {
    pub version: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assistant_turn_writes_its_calls_as_text() {
        let m: Message = serde_json::from_value(serde_json::json!({
            "role": "assistant",
            "tool_calls": [{"function": {"name": "get_order", "arguments": {"id": 7}}}]
        }))
        .unwrap();
        let ContentInput::Text(text) = MessageInput::from(m).content else {
            panic!("calls are text");
        };
        let call: Value = serde_json::from_str(text.strip_prefix("<tool_call>").unwrap()).unwrap();
        assert_eq!(
            call,
            serde_json::json!({ "name": "get_order", "arguments": { "id": 7 } })
        );
    }
}
