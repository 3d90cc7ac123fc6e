//! What a request asks the output to be ([`OutputFormat`]) and the llguidance grammar for it.
//!
//! JSON is generated compactly (no free whitespace between tokens: `whitespace_flexible` off),
//! which keeps a small model from spending its tokens on runs of spaces and makes every object
//! end. Schemas are narrowed first ([`super::narrow`]): objects that name their properties are
//! closed to other keys, and integers are bounded. A tool call is one JSON object
//! `{"name": <one of the tool names>, "arguments": <that tool's parameters schema>}`; when the
//! model may answer in text instead (`tool_choice` `auto`), the output is either text that does
//! not start with `<`, or [`TOOL_CALL_PREFIX`] followed by such an object. With parallel calls
//! allowed (`parallel_tool_calls: true`), more calls may follow, each after a line break and
//! [`TOOL_CALL_PREFIX`]; under `required` the first call's marker is optional. A compact JSON
//! call has no raw line break, so the calls split unambiguously.

use llguidance::api::TopLevelGrammar;
use serde_json::{Value, json};

use super::narrow::narrowed;

/// What marks a tool call in an output that may also be text.
pub const TOOL_CALL_PREFIX: &str = "<tool_call>";

/// One callable tool: its name and the JSON Schema of its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    /// A JSON Schema object.
    pub parameters: Value,
}

/// The shape a generation must take.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputFormat {
    /// Any JSON object.
    JsonObject,
    /// A JSON value valid against the schema.
    JsonSchema(Value),
    /// A call of one of the tools (`tool_choice` `required`, or a single named tool); several
    /// when `parallel`.
    ToolCall {
        tools: Vec<ToolSpec>,
        parallel: bool,
    },
    /// Text, or [`TOOL_CALL_PREFIX`] and then a call of one of the tools (`tool_choice` `auto`);
    /// several calls when `parallel`.
    TextOrToolCall {
        tools: Vec<ToolSpec>,
        parallel: bool,
    },
}

/// Compiler options every JSON grammar is built with.
fn options() -> Value {
    json!({ "whitespace_flexible": false, "item_separator": ",", "key_separator": ":" })
}

/// `schema`, [`narrowed`], with llguidance's options added (an object schema) or wrapped (`true`,
/// `{}`).
fn with_options(schema: &Value) -> Value {
    match narrowed(schema) {
        Value::Object(mut map) => {
            map.insert("x-guidance".into(), options());
            Value::Object(map)
        }
        other => json!({ "allOf": [other], "x-guidance": options() }),
    }
}

/// The schema of one call of any of `tools`.
pub fn tool_call_schema(tools: &[ToolSpec]) -> Value {
    let calls: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "properties": {
                    "name": { "const": t.name },
                    "arguments": t.parameters,
                },
                "required": ["name", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    match <[Value; 1]>::try_from(calls) {
        Ok([one]) => one,
        Err(calls) => json!({ "anyOf": calls }),
    }
}

impl OutputFormat {
    /// The grammar for this format.
    pub fn grammar(&self) -> TopLevelGrammar {
        match self {
            Self::JsonObject => {
                TopLevelGrammar::from_json_schema(with_options(&json!({ "type": "object" })))
            }
            Self::JsonSchema(schema) => TopLevelGrammar::from_json_schema(with_options(schema)),
            Self::ToolCall {
                tools,
                parallel: false,
            } => TopLevelGrammar::from_json_schema(with_options(&tool_call_schema(tools))),
            Self::ToolCall {
                tools,
                parallel: true,
            } => TopLevelGrammar::from_lark(format!(
                "start: \"{TOOL_CALL_PREFIX}\"? call more*\n{}",
                call_rules(tools, true)
            )),
            Self::TextOrToolCall { tools, parallel } => {
                let more = if *parallel { " more*" } else { "" };
                TopLevelGrammar::from_lark(format!(
                    "start: TEXT | \"{TOOL_CALL_PREFIX}\" call{more}\nTEXT: /[^<][\\s\\S]*/\n{}",
                    call_rules(tools, *parallel)
                ))
            }
        }
    }

    /// The tools of a tool grammar (empty for the JSON formats).
    pub fn tools(&self) -> &[ToolSpec] {
        match self {
            Self::ToolCall { tools, .. } | Self::TextOrToolCall { tools, .. } => tools,
            Self::JsonObject | Self::JsonSchema(_) => &[],
        }
    }
}

/// The lark rule `call` (one call of one of `tools`) and, with `more`, the rule `more` (a
/// further call after a line break and the marker).
fn call_rules(tools: &[ToolSpec], more: bool) -> String {
    let call = with_options(&tool_call_schema(tools));
    let mut rules = format!("call: %json {call}\n");
    if more {
        rules.push_str(&format!("more: \"\\n{TOOL_CALL_PREFIX}\" call\n"));
    }
    rules
}
