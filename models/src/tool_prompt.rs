//! The tool prompt: how tools reach a model whose chat template does not take a `tools`
//! variable.
//!
//! Templates that reference `tools` (Llama 3.1+, Qwen 2.5+, Mistral's newer ones) get the tool
//! list through the template itself. For every other template, [`tool_system_prompt`] writes
//! one system message, put before the conversation (or merged into its system message), that
//! lists each tool as JSON and says how to call one:
//!
//! ```text
//! You can call these tools. To call one, answer with <tool_call> followed by one JSON object
//! {"name": <tool name>, "arguments": <arguments object>} and nothing else.
//! ```
//!
//! followed, when the request allows parallel calls, by "To call several, write each call that
//! way on a line of its own.", then one line per tool:
//!
//! ```text
//! {"type":"function","function":{"name":"get_order",...}}
//! ```
//!
//! Earlier calls in the conversation are written the same way, and tool results come back as
//! user messages that start with `Tool result:` when the template has no `tool` role
//! ([`tool_result_message`]). Constrained decoding holds the model to that call format.

use serde_json::Value;

use crate::ChatMessage;

/// Marks a tool call in text (the same marker constrained decoding uses).
pub const TOOL_CALL_TAG: &str = "<tool_call>";

/// The system prompt that lists `tools` (OpenAI's `{"type": "function", "function": …}`); with
/// `parallel`, it says how to make several calls.
pub fn tool_system_prompt(tools: &[Value], parallel: bool) -> String {
    let mut out = format!(
        "You can call these tools. To call one, answer with {TOOL_CALL_TAG} followed by one JSON \
         object {{\"name\": <tool name>, \"arguments\": <arguments object>}} and nothing else."
    );
    if parallel {
        out.push_str(" To call several, write each call that way on a line of its own.");
    }
    for t in tools {
        out.push('\n');
        out.push_str(&t.to_string());
    }
    out
}

/// `messages` with the tool prompt in front: merged into a leading system message, else as a
/// system message of its own.
pub fn with_tool_prompt(
    mut messages: Vec<ChatMessage>,
    tools: &[Value],
    parallel: bool,
) -> Vec<ChatMessage> {
    let prompt = tool_system_prompt(tools, parallel);
    match messages.first_mut() {
        Some(first) if first.role == "system" => {
            first.content = format!("{}\n\n{prompt}", first.content);
        }
        _ => messages.insert(0, ChatMessage::new("system", prompt)),
    }
    messages
}

/// A tool's result as a user message, for templates without a `tool` role.
pub fn tool_result_message(content: &str) -> ChatMessage {
    ChatMessage::new("user", format!("Tool result: {content}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tools() -> Vec<Value> {
        vec![json!({
            "type": "function",
            "function": { "name": "get_order", "parameters": { "type": "object" } }
        })]
    }

    #[test]
    fn the_prompt_lists_every_tool_and_the_call_format() {
        let p = tool_system_prompt(&tools(), false);
        assert!(p.contains(TOOL_CALL_TAG));
        assert!(p.contains("\"name\":\"get_order\""), "{p}");
        assert_eq!(p.lines().count(), 2);
        assert!(!p.contains("several"), "{p}");
        let p = tool_system_prompt(&tools(), true);
        assert!(
            p.lines().next().unwrap().ends_with("on a line of its own."),
            "{p}"
        );
    }

    #[test]
    fn the_prompt_joins_a_system_message_or_leads_the_conversation() {
        let merged = with_tool_prompt(
            vec![
                ChatMessage::new("system", "You are a CRM assistant."),
                ChatMessage::new("user", "hi"),
            ],
            &tools(),
            false,
        );
        assert_eq!(merged.len(), 2);
        assert!(
            merged[0]
                .content
                .starts_with("You are a CRM assistant.\n\nYou can call")
        );
        let added = with_tool_prompt(vec![ChatMessage::new("user", "hi")], &tools(), false);
        assert_eq!(added.len(), 2);
        assert_eq!(added[0].role, "system");
        assert_eq!(added[1].content, "hi");
    }

    #[test]
    fn results_are_written_as_text() {
        let r = tool_result_message("shipped");
        assert_eq!(
            (r.role.as_str(), r.content.as_str()),
            ("user", "Tool result: shipped")
        );
    }
}
