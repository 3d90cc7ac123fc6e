//! Structured outputs and tools at the backends: the native backend's prompt that carries the
//! tools and the grammar compiled for the model's vocabulary, and the text form of tool calls
//! that every backend answers in ([`calls_text`], [`read_calls`]): each call is
//! [`TOOL_CALL_PREFIX`] and `{"name": …, "arguments": {…}}`, as the native tool grammar writes it.

use nfai_inference::GenerationEngine;
use nfai_inference::constrain::{Constraint, OutputFormat, TOOL_CALL_PREFIX};
use nfai_models::tool_prompt::{tool_result_message, with_tool_prompt};
use nfai_models::{ChatMessage, ChatTemplate};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::validate::FieldError;
use crate::validate::structured::OutputSpec;

/// The prompt of `messages` with `tools`: through the template's `tools` variable when it has
/// one, else through the tool prompt ([`nfai_models::tool_prompt`]). Tool results become user
/// messages for templates without a `tool` role. `parallel`: whether the answer may make
/// several calls.
pub fn render(
    template: &ChatTemplate,
    messages: Vec<ChatMessage>,
    tools: &[Value],
    parallel: bool,
) -> nfai_models::Result<String> {
    let messages: Vec<ChatMessage> = if template.supports_tool() {
        messages
    } else {
        messages
            .into_iter()
            .map(|m| match m.role.as_str() {
                "tool" => tool_result_message(&m.content),
                _ => m,
            })
            .collect()
    };
    if tools.is_empty() {
        template.render(&messages, true)
    } else if template.uses_tools() {
        template.render_with_tools(&messages, Some(tools), true)
    } else {
        template.render(&with_tool_prompt(messages, tools, parallel), true)
    }
}

/// Compiles `spec` for the engine's model. A failure names the field: the response format's
/// schema, or the first tool whose parameters do not compile on their own.
pub fn compile(engine: &GenerationEngine, spec: &OutputSpec) -> Result<Constraint, FieldError> {
    engine.constrain(&spec.format).map_err(|e| {
        for (tool, param) in spec.format.tools().iter().zip(&spec.tool_params) {
            let alone = OutputFormat::JsonSchema(tool.parameters.clone());
            if let Err(why) = engine.constrain(&alone) {
                return FieldError::invalid(
                    param.clone(),
                    format!(
                        "The parameters schema of tool '{}' cannot be used: {why}",
                        tool.name
                    ),
                );
            }
        }
        FieldError::invalid(
            spec.param.clone(),
            format!(
                "The schema in '{}' cannot be used for constrained decoding: {e}",
                spec.param
            ),
        )
    })
}

/// One tool call: the function's name and its arguments as the JSON text they were written in,
/// so that a number keeps its digits (a [`Value`] would turn an integer beyond 64 bits into a
/// rounded float).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    /// JSON text.
    pub arguments: String,
}

impl Call {
    /// `arguments` must be JSON text.
    pub fn new(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    /// A call whose arguments came as OpenAI sends them, a string: the JSON text it holds, or
    /// the string itself (as a JSON string) when it is not JSON.
    pub fn from_string(name: impl Into<String>, arguments: &str) -> Self {
        let text = match serde_json::from_str::<&RawValue>(arguments) {
            Ok(_) => arguments.trim().to_owned(),
            Err(_) => Value::from(arguments).to_string(),
        };
        Self::new(name, text)
    }

    /// The arguments as a value (for protocols that send them as an object).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.arguments).unwrap_or(Value::Null)
    }
}

/// `calls` written as text, one [`TOOL_CALL_PREFIX`] each.
pub fn calls_text<'a>(calls: impl IntoIterator<Item = &'a Call>) -> String {
    calls
        .into_iter()
        .map(|c| {
            let name = Value::from(c.name.as_str());
            format!(
                "{TOOL_CALL_PREFIX}{{\"name\":{name},\"arguments\":{}}}",
                c.arguments
            )
        })
        .collect()
}

/// A call object as written: its arguments are kept as text.
#[derive(Deserialize)]
struct CallText<'a> {
    name: String,
    #[serde(borrow)]
    arguments: &'a RawValue,
}

/// One call object `{"name": …, "arguments": …}` at the start of `text` (after any
/// whitespace), and the bytes it took.
fn read_call(text: &str) -> Option<(Call, usize)> {
    let mut de = serde_json::Deserializer::from_str(text).into_iter::<CallText>();
    let c = de.next()?.ok()?;
    Some((Call::new(c.name, c.arguments.get()), de.byte_offset()))
}

/// The calls of `text` when it is nothing but calls, each after [`TOOL_CALL_PREFIX`].
pub fn read_calls(text: &str) -> Option<Vec<Call>> {
    let mut rest = text.strip_prefix(TOOL_CALL_PREFIX)?;
    let mut calls = Vec::new();
    loop {
        let (call, used) = read_call(rest)?;
        calls.push(call);
        rest = rest[used..].trim_start();
        if rest.is_empty() {
            return Some(calls);
        }
        rest = rest.strip_prefix(TOOL_CALL_PREFIX)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_round_trip_through_text() {
        let calls = [
            Call::new(
                "get_order",
                r#"{"id":7,"note":"<tool_call> inside a string"}"#,
            ),
            Call::new("list", "{}"),
            // An integer beyond 64 bits keeps its digits.
            Call::new("big", r#"{"order_id": 37896812804689686123456789}"#),
        ];
        let text = calls_text(&calls);
        assert_eq!(read_calls(&text).unwrap(), calls);
        assert_eq!(calls[0].value()["id"], 7);
        assert_eq!(
            Call::from_string("f", " {\"a\": 1} ").arguments,
            "{\"a\": 1}"
        );
        assert_eq!(Call::from_string("f", "not json").value(), "not json");
        assert!(read_calls("Hello").is_none());
        assert!(read_calls(&format!("{text} and text")).is_none());
        assert!(read_calls("<tool_call>{\"name\":\"f\"}").is_none());
    }
}
