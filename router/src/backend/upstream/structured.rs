//! Tools and structured outputs on the wire to upstreams, both ways.
//!
//! Out: an OpenAI-compatible upstream gets `tools`, `tool_choice` and `response_format` as the
//! client sent them ([`OpenAiFields`]). An Ollama upstream gets `tools` (only the named tool
//! under a named `tool_choice`, as Ollama has no `tool_choice`) and `format`: `"json"` or the
//! schema ([`OllamaFields`]). Calls of earlier turns, which a validated conversation carries as
//! text ([`crate::backend::structured::calls_text`]), become the upstream's `tool_calls` again,
//! and each tool result answers the next open call by `tool_call_id` ([`messages`]).
//!
//! Back: the upstream's `tool_calls` (a whole answer's, streamed deltas, or Ollama's) are written
//! as that same text ([`openai_calls`], [`CallDeltas`], [`ollama_calls`]), so every route reads
//! calls from an upstream as it reads the native engine's: `tool_calls` with `call_…` ids and
//! the arguments as a JSON string.

use std::collections::VecDeque;

use nfai_inference::constrain::{OutputFormat, TOOL_CALL_PREFIX};
use serde::Serialize;
use serde_json::{Value, json};

use crate::backend::structured::{Call, calls_text, read_calls};
use crate::validate::{ChatMessage, ChatRequest};

/// The protocol a conversation is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Ollama,
}

/// One message as an upstream reads it.
#[derive(Debug, Serialize, PartialEq)]
pub struct WireMessage<'a> {
    pub role: &'a str,
    /// `null` for an OpenAI assistant turn that only calls tools.
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// Text before the calls, and the calls, of an assistant turn that ends in calls.
fn split_calls(text: &str) -> Option<(&str, Vec<Call>)> {
    let at = text.find(TOOL_CALL_PREFIX)?;
    Some((&text[..at], read_calls(&text[at..])?))
}

/// OpenAI sends arguments as a JSON string: the call's text, or the string it holds.
fn arguments_string(call: Call) -> String {
    match call.value() {
        Value::String(s) => s,
        _ => call.arguments,
    }
}

/// `messages` for the upstream: assistant calls as `tool_calls` (with ids `call_<turn>_<n>` for
/// OpenAI, whose tool results then name them in order).
pub fn messages(messages: &[ChatMessage], dialect: Dialect) -> Vec<WireMessage<'_>> {
    let mut open: VecDeque<String> = VecDeque::new();
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if m.role == "assistant"
                && let Some((text, calls)) = split_calls(&m.content)
            {
                open.clear();
                let tool_calls = calls
                    .into_iter()
                    .enumerate()
                    .map(|(j, call)| match dialect {
                        Dialect::OpenAi => {
                            let id = format!("call_{i}_{j}");
                            open.push_back(id.clone());
                            let name = call.name.clone();
                            json!({ "id": id, "type": "function",
                                "function": { "name": name, "arguments": arguments_string(call) } })
                        }
                        Dialect::Ollama => {
                            json!({ "function": { "name": call.name, "arguments": call.value() } })
                        }
                    })
                    .collect();
                let content = (dialect == Dialect::Ollama || !text.is_empty()).then_some(text);
                return WireMessage {
                    role: &m.role,
                    content,
                    tool_calls,
                    tool_call_id: None,
                };
            }
            let tool_call_id = (m.role == "tool" && dialect == Dialect::OpenAi)
                .then(|| open.pop_front())
                .flatten();
            WireMessage {
                role: &m.role,
                content: Some(&m.content),
                tool_calls: Vec::new(),
                tool_call_id,
            }
        })
        .collect()
}

/// The tools and output format of a chat request for an OpenAI-compatible upstream.
#[derive(Debug, Default, Serialize)]
pub struct OpenAiFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<&'a [Value]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
}

impl<'a> OpenAiFields<'a> {
    pub fn new(req: &'a ChatRequest) -> Self {
        let tools = &req.tools;
        let response_format = req.output.as_ref().and_then(|spec| match &spec.format {
            OutputFormat::JsonObject => Some(json!({ "type": "json_object" })),
            OutputFormat::JsonSchema(schema) => {
                let js = spec
                    .json_schema
                    .clone()
                    .unwrap_or_else(|| json!({ "name": "output", "schema": schema }));
                Some(json!({ "type": "json_schema", "json_schema": js }))
            }
            OutputFormat::ToolCall { .. } | OutputFormat::TextOrToolCall { .. } => None,
        });
        Self {
            tools: (!tools.tools.is_empty()).then_some(tools.tools.as_slice()),
            tool_choice: tools.choice.as_ref().filter(|_| !tools.tools.is_empty()),
            parallel_tool_calls: tools.parallel.filter(|_| !tools.tools.is_empty()),
            response_format,
        }
    }
}

/// The tools and output format of a chat request for an Ollama upstream.
#[derive(Debug, Default, Serialize)]
pub struct OllamaFields<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
}

impl<'a> OllamaFields<'a> {
    pub fn new(req: &'a ChatRequest) -> Self {
        let format = req.output.as_ref().and_then(|spec| match &spec.format {
            OutputFormat::JsonObject => Some(json!("json")),
            OutputFormat::JsonSchema(schema) => Some(schema.clone()),
            OutputFormat::ToolCall { .. } | OutputFormat::TextOrToolCall { .. } => None,
        });
        // A named tool_choice leaves one tool in the grammar: only that one is offered.
        let only: Option<Vec<&str>> = req.output.as_ref().and_then(|spec| match &spec.format {
            OutputFormat::ToolCall { tools: specs, .. } if specs.len() < req.tools.tools.len() => {
                Some(specs.iter().map(|s| s.name.as_str()).collect())
            }
            _ => None,
        });
        let tools = req
            .tools
            .tools
            .iter()
            .filter(|t| {
                only.as_ref().is_none_or(|names| {
                    t["function"]["name"]
                        .as_str()
                        .is_some_and(|n| names.contains(&n))
                })
            })
            .collect();
        Self { tools, format }
    }
}

/// A call with its arguments as sent: a JSON string (OpenAI) or an object (Ollama, some
/// servers).
fn wire_call(name: &str, arguments: &Value) -> Call {
    match arguments {
        Value::String(s) => Call::from_string(name, s),
        Value::Null => Call::new(name, "{}"),
        other => Call::new(name, other.to_string()),
    }
}

/// The text of `tool_calls` (`[{"function": {"name", "arguments"}}, …]`, OpenAI's or
/// Ollama's); `None` when there are none.
fn wire_calls(calls: &[Value]) -> Option<String> {
    let calls: Vec<Call> = calls
        .iter()
        .filter_map(|c| {
            let f = c.get("function")?;
            Some(wire_call(f.get("name")?.as_str()?, &f["arguments"]))
        })
        .collect();
    (!calls.is_empty()).then(|| calls_text(&calls))
}

/// The text of an OpenAI answer's `message.tool_calls`.
pub fn openai_calls(calls: &[Value]) -> Option<String> {
    wire_calls(calls)
}

/// The text of an Ollama line's `message.tool_calls`.
pub fn ollama_calls(calls: &[Value]) -> Option<String> {
    wire_calls(calls)
}

/// Streamed `delta.tool_calls` of an OpenAI answer, gathered by `index` until the end.
#[derive(Debug, Default)]
pub struct CallDeltas {
    /// Name and arguments text so far, in index order.
    calls: Vec<(String, String)>,
}

impl CallDeltas {
    pub fn add(&mut self, deltas: &[Value]) {
        for d in deltas {
            let f = &d["function"];
            let index = match d["index"].as_u64() {
                Some(i) => i as usize,
                // Without an index, a delta with a name starts a call and one without goes on.
                None if f["name"].is_string() || self.calls.is_empty() => self.calls.len(),
                None => self.calls.len() - 1,
            };
            if index > self.calls.len() + 64 {
                continue;
            }
            if self.calls.len() <= index {
                self.calls.resize_with(index + 1, Default::default);
            }
            let (name, args) = &mut self.calls[index];
            if let Some(n) = f["name"].as_str().filter(|n| !n.is_empty()) {
                n.clone_into(name);
            }
            if let Some(a) = f["arguments"].as_str() {
                args.push_str(a);
            } else if f["arguments"].is_object() {
                *args = f["arguments"].to_string();
            }
        }
    }

    /// The gathered calls as text, once; `None` when there were none.
    pub fn take(&mut self) -> Option<String> {
        let calls: Vec<Value> = std::mem::take(&mut self.calls)
            .into_iter()
            .filter(|(name, _)| !name.is_empty())
            .map(|(name, args)| json!({ "function": { "name": name, "arguments": args } }))
            .collect();
        wire_calls(&calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::structured;

    fn chat(
        messages: Vec<ChatMessage>,
        tools: Option<Value>,
        choice: Option<Value>,
    ) -> ChatRequest {
        let list = tools.as_ref().and_then(Value::as_array).cloned();
        let (tools, output) = structured::tools(list.as_deref(), choice.as_ref(), None).unwrap();
        ChatRequest {
            messages,
            tools,
            output,
            ..ChatRequest::default()
        }
    }

    fn tool(name: &str) -> Value {
        json!({ "type": "function", "function": { "name": name, "parameters": { "type": "object" } } })
    }

    #[test]
    fn earlier_calls_become_tool_calls_answered_in_order() {
        let call = calls_text(&[
            Call::new("get_order", r#"{"id":1}"#),
            Call::new("get_order", r#"{"id":2}"#),
        ]);
        let msgs = vec![
            ChatMessage::new("user", "Where are orders 1 and 2?"),
            ChatMessage::new("assistant", call),
            ChatMessage::new("tool", "shipped"),
            ChatMessage::new("tool", "packed"),
        ];
        let out = serde_json::to_value(messages(&msgs, Dialect::OpenAi)).unwrap();
        assert_eq!(out[1]["content"], Value::Null);
        assert_eq!(out[1]["tool_calls"][0]["id"], "call_1_0");
        assert_eq!(
            out[1]["tool_calls"][1]["function"]["arguments"],
            "{\"id\":2}"
        );
        assert_eq!(out[2]["tool_call_id"], "call_1_0");
        assert_eq!(out[3]["tool_call_id"], "call_1_1");
        assert_eq!(
            out[0],
            json!({ "role": "user", "content": "Where are orders 1 and 2?" })
        );
        let out = serde_json::to_value(messages(&msgs, Dialect::Ollama)).unwrap();
        assert_eq!(out[1]["content"], "");
        assert_eq!(
            out[1]["tool_calls"][0],
            json!({ "function": { "name": "get_order", "arguments": { "id": 1 } } })
        );
        assert!(out[2].get("tool_call_id").is_none());
    }

    #[test]
    fn fields_pass_through_and_translate() {
        let tools = json!([tool("a"), tool("b")]);
        let named = json!({ "type": "function", "function": { "name": "b" } });
        let req = chat(vec![], Some(tools.clone()), Some(named.clone()));
        let o = serde_json::to_value(OpenAiFields::new(&req)).unwrap();
        assert_eq!(o, json!({ "tools": tools, "tool_choice": named }));
        let o = serde_json::to_value(OllamaFields::new(&req)).unwrap();
        assert_eq!(o, json!({ "tools": [tool("b")] }));
        let req = chat(vec![], Some(tools.clone()), Some(json!("none")));
        assert_eq!(
            serde_json::to_value(OpenAiFields::new(&req)).unwrap(),
            json!({})
        );

        let js = json!({ "name": "lead", "strict": true, "schema": { "type": "object" } });
        let req = ChatRequest {
            output: structured::response_format("json_schema", Some(&js)).unwrap(),
            ..ChatRequest::default()
        };
        let o = serde_json::to_value(OpenAiFields::new(&req)).unwrap();
        assert_eq!(
            o,
            json!({ "response_format": { "type": "json_schema", "json_schema": js } })
        );
        let o = serde_json::to_value(OllamaFields::new(&req)).unwrap();
        assert_eq!(o, json!({ "format": { "type": "object" } }));
        let req = ChatRequest {
            output: structured::ollama_format(&json!("json")).unwrap(),
            ..ChatRequest::default()
        };
        let o = serde_json::to_value(OpenAiFields::new(&req)).unwrap();
        assert_eq!(o, json!({ "response_format": { "type": "json_object" } }));
    }

    #[test]
    fn answered_calls_become_text() {
        let t = openai_calls(&[json!({ "id": "x", "type": "function",
            "function": { "name": "f", "arguments": "{\"a\":1}" } })])
        .unwrap();
        assert_eq!(read_calls(&t).unwrap(), vec![Call::new("f", r#"{"a":1}"#)]);
        let t = ollama_calls(&[json!({ "function": { "name": "f", "arguments": { "a": 1 } } })]);
        assert_eq!(
            read_calls(&t.unwrap()).unwrap()[0].value(),
            json!({ "a": 1 })
        );
        // OpenAI's string keeps its digits; one that is not JSON stays a string.
        let big = r#"{"id": 37896812804689686123456789}"#;
        let t = openai_calls(&[json!({ "function": { "name": "f", "arguments": big } })]);
        assert_eq!(read_calls(&t.unwrap()).unwrap()[0].arguments, big);
        let t = openai_calls(&[json!({ "function": { "name": "f", "arguments": "not json" } })]);
        assert_eq!(read_calls(&t.unwrap()).unwrap()[0].value(), "not json");
        assert!(openai_calls(&[]).is_none());

        let mut d = CallDeltas::default();
        d.add(&[json!({ "index": 0, "id": "c", "function": { "name": "f", "arguments": "" } })]);
        d.add(&[json!({ "index": 0, "function": { "arguments": "{\"a\":" } })]);
        d.add(&[json!({ "index": 0, "function": { "arguments": "1}" } })]);
        d.add(&[json!({ "index": 1, "function": { "name": "g", "arguments": "{}" } })]);
        let calls = read_calls(&d.take().unwrap()).unwrap();
        assert_eq!(
            calls,
            vec![Call::new("f", r#"{"a":1}"#), Call::new("g", "{}")]
        );
        assert!(d.take().is_none());
    }
}
