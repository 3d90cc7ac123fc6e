//! Structured outputs and tools: `response_format`, Ollama's `format`, `tools` and
//! `tool_choice`, checked into what the native engine compiles ([`OutputSpec`]) and what the
//! prompt lists ([`ToolSetup`]).
//!
//! - `response_format` `text` is plain text; `json_object` any JSON object; `json_schema` a
//!   value valid against `json_schema.schema` (always held to the schema, as OpenAI's `strict`
//!   is; `strict: false` is accepted and gets the same guarantee).
//! - `tools`: function tools whose `parameters` is a JSON Schema object (absent means no
//!   arguments). `tool_choice` `none` leaves the tools out; `auto` (the default) lets the model
//!   answer in text or call one tool; `required` makes it call one; a named function makes it
//!   call that one. `parallel_tool_calls: true` lets one answer make several calls; unsent (as
//!   llama.cpp's server does) or false holds it to one, since small models given the choice
//!   tend to repeat their call instead of ending (OpenAI's own default is true: send it).
//! - Whether a schema compiles is known only to the engine that runs it: the native backend
//!   compiles [`OutputSpec::format`] and names [`OutputSpec::param`] when it cannot. Upstreams get
//!   the fields unchanged: [`ToolSetup::choice`] and [`OutputSpec::json_schema`] keep what the
//!   grammar does not need (`tool_choice` as sent; the schema's `name`, `strict`, `description`).

use nfai_inference::constrain::{OutputFormat, ToolSpec};
use serde_json::{Value, json};

use super::field::FieldError;

/// The grammar a generation must follow, and the request field a compile error names.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    pub format: OutputFormat,
    pub param: String,
    /// For tool grammars: the field of each tool's parameters, in the order of the tools.
    pub tool_params: Vec<String>,
    /// `response_format.json_schema` as the client sent it, for OpenAI-compatible upstreams.
    pub json_schema: Option<Value>,
}

/// How the answer's text becomes tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolMode {
    /// The whole answer is one call.
    Required,
    /// The answer is text, or a call after [`nfai_inference::constrain::TOOL_CALL_PREFIX`].
    Auto,
}

/// The tools a chat request offers the model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolSetup {
    /// The tools as the client sent them (OpenAI's `{"type": "function", "function": …}`), for
    /// the prompt; empty when there are none or `tool_choice` is `none`.
    pub tools: Vec<Value>,
    /// `None` when no call can be made.
    pub mode: Option<ToolMode>,
    /// `tool_choice` as the client sent it (absent: `auto`), for OpenAI-compatible upstreams.
    pub choice: Option<Value>,
    /// `parallel_tool_calls` as the client sent it, for OpenAI-compatible upstreams.
    pub parallel: Option<bool>,
}

/// `response_format` (`type` and, for `json_schema`, its `json_schema` object).
pub fn response_format(
    kind: &str,
    json_schema: Option<&Value>,
) -> Result<Option<OutputSpec>, FieldError> {
    let spec = |format, sent: &Value| {
        Some(OutputSpec {
            format,
            param: "response_format.json_schema".into(),
            tool_params: Vec::new(),
            json_schema: Some(sent.clone()),
        })
    };
    match kind {
        "text" => Ok(None),
        "json_object" => Ok(Some(OutputSpec {
            format: OutputFormat::JsonObject,
            param: "response_format".into(),
            tool_params: Vec::new(),
            json_schema: None,
        })),
        "json_schema" => {
            let Some(sent) = json_schema.filter(|v| v.is_object()) else {
                return Err(FieldError::invalid(
                    "response_format.json_schema",
                    "'response_format.json_schema' must be an object with a 'name' and a 'schema'.",
                ));
            };
            let schema = match sent.get("schema") {
                None => json!({}),
                Some(s @ (Value::Object(_) | Value::Bool(_))) => s.clone(),
                Some(_) => {
                    return Err(FieldError::invalid(
                        "response_format.json_schema",
                        "'response_format.json_schema.schema' must be a JSON Schema object.",
                    ));
                }
            };
            Ok(spec(OutputFormat::JsonSchema(schema), sent))
        }
        other => Err(FieldError::invalid(
            "response_format.type",
            format!(
                "Unknown response_format type '{other}'; use text, json_object or json_schema."
            ),
        )),
    }
}

/// Ollama's `format`: `"json"` or a JSON Schema object.
pub fn ollama_format(format: &Value) -> Result<Option<OutputSpec>, FieldError> {
    let format = match format {
        Value::Null => return Ok(None),
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::String(s) if s == "json" => OutputFormat::JsonObject,
        Value::Object(_) => OutputFormat::JsonSchema(format.clone()),
        _ => {
            return Err(FieldError::invalid(
                "format",
                "'format' must be \"json\" or a JSON Schema object.",
            ));
        }
    };
    Ok(Some(OutputSpec {
        format,
        param: "format".into(),
        tool_params: Vec::new(),
        json_schema: None,
    }))
}

/// A tool name as OpenAI allows it: 1 to 64 of `a-z A-Z 0-9 _ -`.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One tool: its name and parameters schema.
fn tool(i: usize, t: &Value) -> Result<ToolSpec, FieldError> {
    let kind = t.get("type").and_then(Value::as_str).unwrap_or("function");
    if kind != "function" {
        return Err(FieldError::unsupported(
            format!("tools[{i}].type"),
            format!("Tools of type '{kind}' are not supported; only 'function'."),
        ));
    }
    let f = t
        .get("function")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            FieldError::invalid(
                format!("tools[{i}].function"),
                format!("'tools[{i}].function' must be an object with a 'name'."),
            )
        })?;
    let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
    if !valid_name(name) {
        return Err(FieldError::invalid(
            format!("tools[{i}].function.name"),
            format!(
                "'tools[{i}].function.name' must be 1 to 64 letters, digits, '_' or '-', got '{name}'."
            ),
        ));
    }
    let parameters = match f.get("parameters") {
        None | Some(Value::Null) => json!({ "type": "object", "properties": {} }),
        Some(p @ Value::Object(m)) if m.get("type").is_none_or(|t| t == "object") => p.clone(),
        Some(_) => {
            return Err(FieldError::invalid(
                format!("tools[{i}].function.parameters"),
                format!(
                    "The parameters of tool '{name}' must be a JSON Schema object ({{\"type\": \"object\", …}})."
                ),
            ));
        }
    };
    Ok(ToolSpec {
        name: name.to_string(),
        parameters,
    })
}

/// `tools`, `tool_choice` and `parallel_tool_calls`: what the prompt lists, and the grammar of
/// the answer.
pub fn tools(
    tools: Option<&[Value]>,
    choice: Option<&Value>,
    parallel_sent: Option<bool>,
) -> Result<(ToolSetup, Option<OutputSpec>), FieldError> {
    let parallel = parallel_sent == Some(true);
    let tools = tools.unwrap_or_default();
    let specs = tools
        .iter()
        .enumerate()
        .map(|(i, t)| tool(i, t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = specs.iter().find(|s| !seen.insert(s.name.as_str())) {
        return Err(FieldError::invalid(
            "tools",
            format!("Two tools are named '{}'.", dup.name),
        ));
    }
    let sent_choice = choice.filter(|c| !c.is_null()).cloned();
    let choice = match choice {
        None | Some(Value::Null) => "auto",
        Some(Value::String(s)) if matches!(s.as_str(), "auto" | "none" | "required") => s.as_str(),
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    FieldError::invalid(
                        "tool_choice",
                        "'tool_choice' must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": …}}.",
                    )
                })?;
            let Some(i) = specs.iter().position(|s| s.name == name) else {
                return Err(FieldError::invalid(
                    "tool_choice",
                    format!("'tool_choice' names '{name}', which is not one of the tools."),
                ));
            };
            let setup = ToolSetup {
                tools: tools.to_vec(),
                mode: Some(ToolMode::Required),
                choice: sent_choice,
                parallel: parallel_sent,
            };
            let spec = OutputSpec {
                format: OutputFormat::ToolCall {
                    tools: vec![specs[i].clone()],
                    parallel,
                },
                param: "tools".into(),
                tool_params: vec![format!("tools[{i}].function.parameters")],
                json_schema: None,
            };
            return Ok((setup, Some(spec)));
        }
        Some(other) => {
            return Err(FieldError::invalid(
                "tool_choice",
                format!(
                    "'tool_choice' must be auto, none, required or a named function, got {other}."
                ),
            ));
        }
    };
    if specs.is_empty() {
        return match choice {
            "auto" | "none" => Ok((ToolSetup::default(), None)),
            _ => Err(FieldError::invalid(
                "tool_choice",
                "'tool_choice' is 'required' but there are no 'tools'.",
            )),
        };
    }
    let tool_params = (0..specs.len())
        .map(|i| format!("tools[{i}].function.parameters"))
        .collect();
    let (mode, format) = match choice {
        "none" => return Ok((ToolSetup::default(), None)),
        "required" => (
            ToolMode::Required,
            OutputFormat::ToolCall {
                tools: specs,
                parallel,
            },
        ),
        _ => (
            ToolMode::Auto,
            OutputFormat::TextOrToolCall {
                tools: specs,
                parallel,
            },
        ),
    };
    let setup = ToolSetup {
        tools: tools.to_vec(),
        mode: Some(mode),
        choice: sent_choice,
        parallel: parallel_sent,
    };
    let spec = OutputSpec {
        format,
        param: "tools".into(),
        tool_params,
        json_schema: None,
    };
    Ok((setup, Some(spec)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, parameters: Value) -> Value {
        json!({ "type": "function", "function": { "name": name, "parameters": parameters } })
    }

    #[test]
    fn response_formats() {
        assert_eq!(response_format("text", None).unwrap(), None);
        let o = response_format("json_object", None).unwrap().unwrap();
        assert_eq!(o.format, OutputFormat::JsonObject);
        let s = json!({ "name": "x", "schema": { "type": "object" }, "strict": true });
        let o = response_format("json_schema", Some(&s)).unwrap().unwrap();
        assert_eq!(
            o.format,
            OutputFormat::JsonSchema(json!({ "type": "object" }))
        );
        assert_eq!(o.param, "response_format.json_schema");
        let e = response_format("json_schema", None).unwrap_err();
        assert_eq!(e.param, "response_format.json_schema");
        let e = response_format("json_schema", Some(&json!({ "schema": 3 }))).unwrap_err();
        assert_eq!(e.param, "response_format.json_schema");
        assert_eq!(
            response_format("yaml", None).unwrap_err().param,
            "response_format.type"
        );
    }

    #[test]
    fn tool_choices() {
        let t = vec![f("a", json!({ "type": "object" })), f("b", json!({}))];
        let (setup, spec) = tools(Some(&t), None, None).unwrap();
        assert_eq!((setup.mode, setup.parallel), (Some(ToolMode::Auto), None));
        assert!(matches!(
            spec.unwrap().format,
            OutputFormat::TextOrToolCall { tools: v, parallel: false } if v.len() == 2
        ));
        let (setup, spec) = tools(Some(&t), None, Some(true)).unwrap();
        assert_eq!(setup.parallel, Some(true));
        assert!(matches!(
            spec.unwrap().format,
            OutputFormat::TextOrToolCall { parallel: true, .. }
        ));
        let (setup, spec) = tools(Some(&t), Some(&json!("none")), None).unwrap();
        assert!(setup.tools.is_empty() && spec.is_none());
        let (setup, spec) = tools(Some(&t), Some(&json!("required")), Some(true)).unwrap();
        assert_eq!(setup.mode, Some(ToolMode::Required));
        assert!(matches!(
            spec.unwrap().format,
            OutputFormat::ToolCall { tools: v, parallel: true } if v.len() == 2
        ));
        let named = json!({ "type": "function", "function": { "name": "b" } });
        let (_, spec) = tools(Some(&t), Some(&named), Some(false)).unwrap();
        let spec = spec.unwrap();
        assert!(matches!(
            &spec.format,
            OutputFormat::ToolCall { tools: v, parallel: false } if v.len() == 1 && v[0].name == "b"
        ));
        assert_eq!(spec.tool_params, ["tools[1].function.parameters"]);
        let missing = json!({ "type": "function", "function": { "name": "zz" } });
        assert_eq!(
            tools(Some(&t), Some(&missing), None).unwrap_err().param,
            "tool_choice"
        );
        assert_eq!(
            tools(None, Some(&json!("required")), None)
                .unwrap_err()
                .param,
            "tool_choice"
        );
        assert_eq!(
            tools(Some(&t), Some(&json!("sometimes")), None)
                .unwrap_err()
                .param,
            "tool_choice"
        );
    }

    #[test]
    fn bad_tools_are_named() {
        let e = tools(Some(&[f("a", json!("string"))]), None, None).unwrap_err();
        assert_eq!(e.param, "tools[0].function.parameters");
        assert!(e.message.contains("'a'"), "{}", e.message);
        let e = tools(
            Some(&[f("ok", json!({})), f("b", json!({ "type": "array" }))]),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.param, "tools[1].function.parameters");
        let e = tools(Some(&[f("no spaces", json!({}))]), None, None).unwrap_err();
        assert_eq!(e.param, "tools[0].function.name");
        let e = tools(Some(&[json!({ "type": "code_interpreter" })]), None, None).unwrap_err();
        assert_eq!(e.param, "tools[0].type");
        let e = tools(Some(&[f("a", json!({})), f("a", json!({}))]), None, None).unwrap_err();
        assert_eq!(e.param, "tools");
    }

    #[test]
    fn ollama_formats() {
        assert_eq!(
            ollama_format(&json!("json")).unwrap().unwrap().format,
            OutputFormat::JsonObject
        );
        assert!(ollama_format(&json!("")).unwrap().is_none());
        let s = json!({ "type": "object" });
        assert_eq!(
            ollama_format(&s).unwrap().unwrap().format,
            OutputFormat::JsonSchema(s.clone())
        );
        assert_eq!(ollama_format(&json!(3)).unwrap_err().param, "format");
    }
}
