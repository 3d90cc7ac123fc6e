//! The native backend's side of structured outputs and tools: the prompt that carries the
//! tools, and the grammar compiled for the model's vocabulary.

use nfai_inference::GenerationEngine;
use nfai_inference::constrain::{Constraint, OutputFormat};
use nfai_models::tool_prompt::{tool_result_message, with_tool_prompt};
use nfai_models::{ChatMessage, ChatTemplate};
use serde_json::Value;

use crate::validate::FieldError;
use crate::validate::structured::OutputSpec;

/// The prompt of `messages` with `tools`: through the template's `tools` variable when it has
/// one, else through the tool prompt ([`nfai_models::tool_prompt`]). Tool results become user
/// messages for templates without a `tool` role.
pub fn render(
    template: &ChatTemplate,
    messages: Vec<ChatMessage>,
    tools: &[Value],
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
        template.render(&with_tool_prompt(messages, tools), true)
    }
}

/// Compiles `spec` for the engine's model. A failure names the field: the response format's
/// schema, or the first tool whose parameters do not compile on their own.
pub fn compile(engine: &GenerationEngine, spec: &OutputSpec) -> Result<Constraint, FieldError> {
    engine.constrain(&spec.format).map_err(|e| {
        let tools = match &spec.format {
            OutputFormat::ToolCall(t) | OutputFormat::TextOrToolCall(t) => t.as_slice(),
            _ => &[],
        };
        for (tool, param) in tools.iter().zip(&spec.tool_params) {
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
