//! Structured outputs and tools at the backends: the native backend's prompt that carries the
//! tools and the grammar compiled for the model's vocabulary, and the text form of tool calls
//! that every backend answers in ([`calls_text`], [`read_calls`]): each call is
//! [`TOOL_CALL_PREFIX`] and `{"name": …, "arguments": {…}}`, as the native tool grammar writes it.

use nfai_inference::GenerationEngine;
use nfai_inference::constrain::{Constraint, OutputFormat, TOOL_CALL_PREFIX};
use nfai_models::tool_prompt::{tool_result_message, with_tool_prompt};
use nfai_models::{ChatMessage, ChatTemplate};
use serde_json::{Value, json};

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

/// `calls` (`(name, arguments)`) written as text, one [`TOOL_CALL_PREFIX`] each.
pub fn calls_text<'a>(calls: impl IntoIterator<Item = (&'a str, &'a Value)>) -> String {
    calls
        .into_iter()
        .map(|(name, arguments)| {
            let call = json!({ "name": name, "arguments": arguments });
            format!("{TOOL_CALL_PREFIX}{call}")
        })
        .collect()
}

/// One call object `{"name": …, "arguments": …}` at the start of `text` (after any
/// whitespace), and the bytes it took.
fn read_call(text: &str) -> Option<((String, Value), usize)> {
    let mut de = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let v = de.next()?.ok()?;
    let name = v.get("name")?.as_str()?.to_string();
    let arguments = v.get("arguments")?.clone();
    Some(((name, arguments), de.byte_offset()))
}

/// The calls of `text` when it is nothing but calls, each after [`TOOL_CALL_PREFIX`].
pub fn read_calls(text: &str) -> Option<Vec<(String, Value)>> {
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
        let a = json!({ "id": 7, "note": "<tool_call> inside a string" });
        let b = json!({});
        let text = calls_text([("get_order", &a), ("list", &b)]);
        assert_eq!(
            read_calls(&text).unwrap(),
            vec![("get_order".to_string(), a), ("list".to_string(), b)]
        );
        assert!(read_calls("Hello").is_none());
        assert!(read_calls(&format!("{text} and text")).is_none());
        assert!(read_calls("<tool_call>{\"name\":\"f\"}").is_none());
    }
}
