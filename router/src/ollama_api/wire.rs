//! Ollama's request bodies as clients send them (unknown fields ignored, as Ollama does), and
//! their mapping onto nfai's validated request types.

use serde::Deserialize;
use serde_json::Value;

use crate::backend::{GenerationOptions, KeepAlive};
use crate::error::ApiError;
use crate::openai::{SamplingFields, StopSpec};

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
    ) -> Result<GenerationOptions, ApiError> {
        let fields = SamplingFields {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            seed: self.seed,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            repetition_penalty: self.repeat_penalty,
            stop: self
                .stop
                .clone()
                .filter(|s| !s.is_empty())
                .map(StopSpec::Many),
            ..Default::default()
        };
        let (sampling, stop) = crate::validate::sampling(&fields)?;
        Ok(GenerationOptions {
            sampling,
            stop,
            max_tokens: self.num_predict.filter(|&n| n >= 1).map(|n| n as usize),
            max_tokens_param: "options.num_predict",
            ignore_eos: false,
            keep_alive: keep_alive(keep)?,
            stream,
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: String,
    pub images: Option<Vec<Value>>,
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
pub fn keep_alive(v: Option<&Value>) -> Result<Option<KeepAlive>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => KeepAlive::parse_json(v)
            .map(Some)
            .map_err(|m| ApiError::invalid("keep_alive", m)),
    }
}

/// Refuses what nfai cannot do, by name.
pub fn refuse_unsupported(
    format: &Option<Value>,
    images: bool,
    tools: bool,
) -> Result<(), ApiError> {
    if format.as_ref().is_some_and(|f| !f.is_null() && f != "") {
        return Err(ApiError::unsupported(
            "format",
            "Structured output (format) is not supported.",
        ));
    }
    if images {
        return Err(ApiError::unsupported("images", "Images are not supported."));
    }
    if tools {
        return Err(ApiError::unsupported(
            "tools",
            "Tool calling is not supported.",
        ));
    }
    Ok(())
}
