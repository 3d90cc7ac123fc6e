//! Clients of other servers, one node each: [`ollama::OllamaClient`] and
//! [`openai::OpenAiClient`] implement `Backend` over the shared HTTP plumbing in [`http`] and
//! the line-by-line stream reading in [`lines`]; [`structured`] carries tools and output formats
//! to them and their tool calls back. Choosing a node, retrying and cooling down
//! belong to `crate::backend::routed`.

pub mod http;
pub mod lines;
pub mod ollama;
pub mod openai;
pub mod structured;

#[cfg(test)]
mod tests;
