//! The protocol-neutral, validated request types every backend accepts (and, re-exported from
//! `field`, [`FieldError`], the error that names the request field at fault).

pub use nfai_cache::KeepAlive;
use nfai_inference::SamplingParams;
pub use nfai_models::chat_template::ChatMessage;
use tokio::time::Instant;

use crate::catalog::SamplingDefaults;

pub use super::field::{FieldError, FieldErrorKind};

/// Sampling fields as the client sent them: ranges checked, defaults not yet applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplingRequest {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub seed: Option<u64>,
    pub repetition_penalty: Option<f32>,
    /// The repetition penalty's window; `usize::MAX`: the whole sequence.
    pub repeat_last_n: Option<usize>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
}

impl SamplingRequest {
    /// The engine's parameters: the request's values, else the model's defaults, else neutral.
    pub fn resolve(&self, d: &SamplingDefaults) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature.or(d.temperature).unwrap_or(1.0),
            top_p: self.top_p.or(d.top_p).unwrap_or(1.0),
            top_k: self.top_k.or(d.top_k).unwrap_or(0),
            seed: self.seed,
            repetition_penalty: self
                .repetition_penalty
                .or(d.repetition_penalty)
                .unwrap_or(1.0),
            repeat_last_n: self
                .repeat_last_n
                .or(d.repeat_last_n)
                .filter(|&n| n != usize::MAX),
            presence_penalty: self.presence_penalty.unwrap_or(0.0),
            frequency_penalty: self.frequency_penalty.unwrap_or(0.0),
        }
    }
}

/// Generation options shared by chat and text completions.
#[derive(Debug, Clone, Default)]
pub struct GenerationOptions {
    pub sampling: SamplingRequest,
    /// Non-empty, at most four.
    pub stop: Vec<String>,
    /// The completion limit the client asked for, if any (at least 1).
    pub max_tokens: Option<usize>,
    /// The field `max_tokens` came from (`max_tokens`, `max_completion_tokens`,
    /// `options.num_predict`), for errors.
    pub max_tokens_param: &'static str,
    pub ignore_eos: bool,
    /// How long the model stays loaded after this request.
    pub keep_alive: Option<KeepAlive>,
    /// The client reads the answer as it is generated. Upstreams are asked for a stream only
    /// then; otherwise for one whole answer, which costs both sides less.
    pub stream: bool,
    /// All of the request ends by then (`x-request-timeout`); `None`: no limit of its own.
    pub deadline: Option<Instant>,
}

/// A validated chat request.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// Non-empty; roles are system, user, assistant or tool.
    pub messages: Vec<ChatMessage>,
    pub options: GenerationOptions,
    /// The tools offered to the model (see [`super::structured`]).
    pub tools: super::structured::ToolSetup,
    /// The grammar the answer must follow: a response format or a tool call.
    pub output: Option<super::structured::OutputSpec>,
}

/// One prompt of a text completion.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Text(String),
    /// Token ids of the model's vocabulary (checked by the backend that runs them).
    Tokens(Vec<u32>),
}

/// A validated text-completion request: one choice per prompt.
#[derive(Debug, Clone)]
pub struct CompletionRequest {
    /// Between 1 and 2048.
    pub prompts: Vec<Prompt>,
    pub options: GenerationOptions,
    /// Return the prompt before the completion.
    pub echo: bool,
}

/// A validated embeddings request.
#[derive(Debug, Clone, Default)]
pub struct EmbeddingRequest {
    /// Between 1 and 2048, none empty.
    pub inputs: Vec<Prompt>,
    /// The vector size the client expects, if it said.
    pub dimensions: Option<usize>,
    /// Whether the texts are queries or passages (models trained with prefixes, such as
    /// multilingual-e5, embed them differently; others ignore it).
    pub input_kind: nfai_models::InputKind,
    /// How long the model stays loaded after this request.
    pub keep_alive: Option<KeepAlive>,
    /// All of the request ends by then; `None`: no limit of its own.
    pub deadline: Option<Instant>,
}
