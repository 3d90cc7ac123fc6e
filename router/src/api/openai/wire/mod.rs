//! OpenAI wire types: requests as the SDKs send them and responses as the SDKs parse them.
//!
//! Requests keep every field the SDKs may send, so that a field we do not support is refused by
//! name instead of being silently ignored. Extension fields (`top_k`, `repetition_penalty`,
//! `repeat_last_n`, `ignore_eos`) are accepted too. The conversions into `crate::validate`'s
//! inputs are here.

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod models;

use serde::{Deserialize, Serialize};

use crate::validate::SamplingInput;

/// `stop`: one string or a list of strings.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum StopSpec {
    One(String),
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// `usage` of a response.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub prompt_tokens_details: PromptTokensDetails,
}

/// `usage.prompt_tokens_details`: prompt tokens served from the prefix cache.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PromptTokensDetails {
    pub cached_tokens: usize,
}

impl Usage {
    pub fn new(prompt_tokens: usize, completion_tokens: usize) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: PromptTokensDetails::default(),
        }
    }

    /// Adds the counts of one finished sequence (a request with `n` > 1 sums its choices).
    pub fn add(&mut self, u: &nfai_inference::Usage) {
        self.prompt_tokens += u.prompt_tokens;
        self.completion_tokens += u.completion_tokens;
        self.total_tokens = self.prompt_tokens + self.completion_tokens;
        self.prompt_tokens_details.cached_tokens += u.cached_tokens;
    }
}

impl From<nfai_inference::Usage> for Usage {
    fn from(u: nfai_inference::Usage) -> Self {
        let mut out = Self::new(0, 0);
        out.add(&u);
        out
    }
}

/// Sampling fields shared by chat and text completions.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct SamplingFields {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i64>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub repeat_last_n: Option<i64>,
    pub stop: Option<StopSpec>,
    pub n: Option<i64>,
    pub logit_bias: Option<serde_json::Map<String, serde_json::Value>>,
    pub user: Option<String>,
    #[serde(default)]
    pub ignore_eos: bool,
}

impl SamplingFields {
    /// The fields as the protocol-neutral validation reads them.
    pub fn input(&self) -> SamplingInput {
        SamplingInput {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            seed: self.seed,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            repetition_penalty: self.repetition_penalty,
            repeat_last_n: self.repeat_last_n,
            stop: match &self.stop {
                None => Vec::new(),
                Some(StopSpec::One(s)) => vec![s.clone()],
                Some(StopSpec::Many(v)) => v.clone(),
            },
            n: self.n,
            logit_bias: self.logit_bias.as_ref().is_some_and(|m| !m.is_empty()),
        }
    }
}

/// A response id such as `chatcmpl-3f9c…`.
pub fn new_id(prefix: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n: u128 = rand::random();
    let mut id = String::with_capacity(prefix.len() + 33);
    id.push_str(prefix);
    id.push('-');
    for i in (0..32).rev() {
        id.push(HEX[((n >> (i * 4)) & 0xf) as usize] as char);
    }
    id
}

/// A tool call id as OpenAI writes them: `call_` and 32 hex digits.
pub fn new_call_id() -> String {
    new_id("call").replacen('-', "_", 1)
}
