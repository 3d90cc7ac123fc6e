//! The `POST /v1/responses` body and its checks: [`CreateBody`] as sent, [`Valid`] once every
//! field is known, in range and supported. Every refusal names its field: an unknown field is
//! `unknown_parameter`, a known one this server does not offer is `unsupported`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::responses::store::Turn;
use crate::validate::{self, SamplingInput, SamplingRequest};

/// The body as sent.
#[derive(Debug, Deserialize)]
pub struct CreateBody {
    pub model: String,
    pub input: Option<Value>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<i64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub stream: Option<bool>,
    pub store: Option<bool>,
    pub previous_response_id: Option<String>,
    pub include: Option<Vec<String>>,
    pub tools: Option<Vec<Value>>,
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    pub metadata: Option<Map<String, Value>>,
    pub user: Option<String>,
    pub text: Option<Value>,
    pub truncation: Option<String>,
    /// Every other field: refused by name unless null.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Fields of OpenAI's API that this server does not offer.
const UNSUPPORTED: [&str; 10] = [
    "background",
    "conversation",
    "max_tool_calls",
    "prompt",
    "prompt_cache_key",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "stream_options",
    "top_logprobs",
];

/// The one `include` value offered.
pub const INCLUDE_RESULTS: &str = "file_search_call.results";

/// The most results a file search returns, and the default.
const MAX_RESULTS: i64 = 50;
const DEFAULT_RESULTS: i64 = 10;

/// A `file_search` tool, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSearch {
    /// Its position in `tools`, for errors.
    pub tool_index: usize,
    pub vector_store_ids: Vec<String>,
    pub filters: Option<Value>,
    pub max_num_results: usize,
    pub score_threshold: Option<f32>,
    /// nfai's extension: hits of source rows re-read from the database before the answer
    /// (see `crate::retrieval::fresh`).
    pub fresh: bool,
}

/// A checked request.
#[derive(Debug, Clone)]
pub struct Valid {
    pub model: String,
    /// The input messages: roles `system` (also for `developer`), `user` or `assistant`.
    pub input: Vec<Turn>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<usize>,
    pub sampling: SamplingRequest,
    pub stream: bool,
    pub store: bool,
    pub previous_response_id: Option<String>,
    /// `include` asks for the file search's results.
    pub include_results: bool,
    /// The file search to run (absent without the tool, or with `tool_choice: "none"`).
    pub file_search: Option<FileSearch>,
    /// Fields answered back in the response object as they were set.
    pub echo: Map<String, Value>,
}

fn unsupported(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::unsupported(param, message)
}

impl CreateBody {
    /// Checks every field.
    pub fn validate(self) -> Result<Valid, ApiError> {
        for (name, value) in &self.other {
            if value.is_null() {
                continue;
            }
            if UNSUPPORTED.contains(&name.as_str()) {
                return Err(unsupported(
                    name,
                    format!("'{name}' is not supported by this server."),
                ));
            }
            return Err(
                ApiError::invalid(name.clone(), format!("Unknown parameter: '{name}'."))
                    .with_code("unknown_parameter"),
            );
        }
        if self.model.trim().is_empty() {
            return Err(ApiError::invalid("model", "'model' must not be empty."));
        }
        let input = match self.input {
            None | Some(Value::Null) => {
                return Err(ApiError::invalid(
                    "input",
                    "Missing required parameter: 'input'.",
                ));
            }
            Some(v) => input(v)?,
        };
        let max_output_tokens = validate::max_tokens(self.max_output_tokens, "max_output_tokens")?;
        let (sampling, _) = validate::sampling(&SamplingInput {
            temperature: self.temperature,
            top_p: self.top_p,
            ..SamplingInput::default()
        })?;
        let include_results = match &self.include {
            None => false,
            Some(items) => {
                if let Some((i, other)) = items
                    .iter()
                    .enumerate()
                    .find(|(_, v)| v.as_str() != INCLUDE_RESULTS)
                {
                    return Err(unsupported(
                        &format!("include[{i}]"),
                        format!("'include' may only hold '{INCLUDE_RESULTS}', got '{other}'."),
                    ));
                }
                !items.is_empty()
            }
        };
        let tools = self.tools.unwrap_or_default();
        let mut file_search = None;
        let mut tools_echo = Vec::with_capacity(tools.len());
        for (i, tool) in tools.iter().enumerate() {
            let fs = file_search_tool(i, tool)?;
            if file_search.is_some() {
                return Err(unsupported(
                    &format!("tools[{i}]"),
                    "Only one 'file_search' tool may be given; list every store in its 'vector_store_ids'.",
                ));
            }
            tools_echo.push(json!({
                "type": "file_search",
                "vector_store_ids": fs.vector_store_ids,
                "filters": fs.filters,
                "max_num_results": fs.max_num_results,
                "ranking_options": {
                    "ranker": "auto",
                    "score_threshold": fs.score_threshold.unwrap_or(0.0),
                },
            }));
            file_search = Some(fs);
        }
        let tool_choice = tool_choice(self.tool_choice)?;
        if tool_choice == "none" {
            file_search = None;
        }
        if let Some(text) = self.text.as_ref().filter(|t| !t.is_null()) {
            let kind = text.pointer("/format/type").and_then(Value::as_str);
            let only_format = text
                .as_object()
                .is_some_and(|o| o.keys().all(|k| k == "format"));
            if !(only_format && matches!(kind, None | Some("text"))) {
                return Err(unsupported(
                    "text.format",
                    "Only text output is supported ('text': {'format': {'type': 'text'}}).",
                ));
            }
        }
        let truncation = self.truncation.unwrap_or_else(|| "disabled".to_owned());
        if !matches!(truncation.as_str(), "disabled" | "auto") {
            return Err(ApiError::invalid(
                "truncation",
                format!("'truncation' must be 'disabled' or 'auto', got '{truncation}'."),
            ));
        }
        let metadata = self.metadata.unwrap_or_default();
        if metadata.len() > 16 || metadata.values().any(|v| !v.is_string()) {
            return Err(ApiError::invalid(
                "metadata",
                "'metadata' holds at most 16 keys, each with a string value.",
            ));
        }
        let store = self.store.unwrap_or(true);
        let mut echo = Map::new();
        echo.insert("instructions".into(), json!(self.instructions));
        echo.insert("max_output_tokens".into(), json!(max_output_tokens));
        echo.insert("temperature".into(), json!(self.temperature));
        echo.insert("top_p".into(), json!(self.top_p));
        echo.insert("tools".into(), Value::Array(tools_echo));
        echo.insert("tool_choice".into(), tool_choice);
        echo.insert(
            "parallel_tool_calls".into(),
            json!(self.parallel_tool_calls.unwrap_or(true)),
        );
        echo.insert(
            "previous_response_id".into(),
            json!(self.previous_response_id),
        );
        echo.insert("store".into(), json!(store));
        echo.insert("metadata".into(), Value::Object(metadata));
        echo.insert("truncation".into(), json!(truncation));
        echo.insert("user".into(), json!(self.user));
        echo.insert("text".into(), json!({"format": {"type": "text"}}));
        Ok(Valid {
            model: self.model,
            input,
            instructions: self.instructions,
            max_output_tokens,
            sampling,
            stream: self.stream.unwrap_or(false),
            store,
            previous_response_id: self.previous_response_id,
            include_results,
            file_search,
            echo,
        })
    }
}

/// `tool_choice`: `auto` (the default), `required`, `none`, or `{"type": "file_search"}`;
/// answered back as given.
fn tool_choice(v: Option<Value>) -> Result<Value, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(json!("auto")),
        Some(Value::String(s)) if matches!(s.as_str(), "auto" | "required" | "none") => {
            Ok(Value::String(s))
        }
        Some(v) if v.get("type").and_then(Value::as_str) == Some("file_search") => Ok(v),
        Some(v) => Err(unsupported(
            "tool_choice",
            format!(
                "'tool_choice' must be 'auto', 'required', 'none' or a file_search tool, got {v}."
            ),
        )),
    }
}

/// One tool: only `file_search`, with its fields checked.
fn file_search_tool(i: usize, tool: &Value) -> Result<FileSearch, ApiError> {
    let field = |name: &str| format!("tools[{i}].{name}");
    let Some(obj) = tool.as_object() else {
        return Err(ApiError::invalid(
            format!("tools[{i}]"),
            "Each tool must be an object.",
        ));
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("file_search") => {}
        Some(other) => {
            return Err(unsupported(
                &field("type"),
                format!("Tool type '{other}' is not supported; this server offers 'file_search'."),
            ));
        }
        None => {
            return Err(ApiError::invalid(
                field("type"),
                "Missing required parameter: 'type'.",
            ));
        }
    }
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "type"
                | "vector_store_ids"
                | "filters"
                | "max_num_results"
                | "ranking_options"
                | "fresh"
        ) {
            return Err(ApiError::invalid(
                field(key),
                format!("Unknown parameter: '{}'.", field(key)),
            )
            .with_code("unknown_parameter"));
        }
    }
    let ids: Vec<String> = match obj.get("vector_store_ids") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ApiError::invalid(
                    field("vector_store_ids"),
                    "'vector_store_ids' must be a list of strings.",
                )
            })?,
        _ => {
            return Err(ApiError::invalid(
                field("vector_store_ids"),
                "'vector_store_ids' must list at least one vector store.",
            ));
        }
    };
    let max = match obj.get("max_num_results") {
        None | Some(Value::Null) => DEFAULT_RESULTS,
        Some(v) => v
            .as_i64()
            .filter(|n| (1..=MAX_RESULTS).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    field("max_num_results"),
                    format!(
                        "'max_num_results' must be an integer between 1 and {MAX_RESULTS}, got {v}."
                    ),
                )
            })?,
    };
    let ranking = obj.get("ranking_options").filter(|v| !v.is_null());
    let score_threshold = match ranking.and_then(|r| r.get("score_threshold")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|t| (0.0..=1.0).contains(t))
                .ok_or_else(|| {
                    ApiError::invalid(
                        field("ranking_options.score_threshold"),
                        format!("'score_threshold' must be between 0 and 1, got {v}."),
                    )
                })? as f32,
        ),
    };
    let fresh = match obj.get("fresh") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(ApiError::invalid(
                field("fresh"),
                format!("'fresh' must be a boolean, got {v}."),
            ));
        }
    };
    Ok(FileSearch {
        tool_index: i,
        vector_store_ids: ids,
        filters: obj.get("filters").filter(|v| !v.is_null()).cloned(),
        max_num_results: max as usize,
        score_threshold,
        fresh,
    })
}

/// `input`: a string (one user message) or a list of messages whose content is a string or
/// `input_text` / `output_text` parts.
fn input(v: Value) -> Result<Vec<Turn>, ApiError> {
    let items = match v {
        Value::String(s) => {
            return Ok(vec![Turn {
                role: "user".into(),
                content: s,
            }]);
        }
        Value::Array(items) if !items.is_empty() => items,
        _ => {
            return Err(ApiError::invalid(
                "input",
                "'input' must be a string or a non-empty list of messages.",
            ));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| message(i, item))
        .collect()
}

fn message(i: usize, item: Value) -> Result<Turn, ApiError> {
    let at = |f: &str| format!("input[{i}].{f}");
    let Value::Object(obj) = item else {
        return Err(ApiError::invalid(
            format!("input[{i}]"),
            "Each input item must be a message object.",
        ));
    };
    if let Some(kind) = obj.get("type").and_then(Value::as_str)
        && kind != "message"
    {
        return Err(unsupported(
            &at("type"),
            format!("Input items of type '{kind}' are not supported; send messages."),
        ));
    }
    let role = match obj.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => "system",
        Some("user") => "user",
        Some("assistant") => "assistant",
        other => {
            return Err(ApiError::invalid(
                at("role"),
                format!(
                    "'role' must be user, assistant, system or developer, got {}.",
                    other.map_or("nothing".to_owned(), |r| format!("'{r}'"))
                ),
            ));
        }
    };
    let content = match obj.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str);
                match (kind, part.get("text").and_then(Value::as_str)) {
                    (Some("input_text" | "output_text"), Some(t)) => text.push_str(t),
                    (Some(kind @ ("input_text" | "output_text")), None) => {
                        return Err(ApiError::invalid(
                            at(&format!("content[{j}].text")),
                            format!("A '{kind}' part needs its 'text'."),
                        ));
                    }
                    (kind, _) => {
                        return Err(unsupported(
                            &at(&format!("content[{j}].type")),
                            format!(
                                "Content parts of type '{}' are not supported; send 'input_text'.",
                                kind.unwrap_or("")
                            ),
                        ));
                    }
                }
            }
            text
        }
        _ => {
            return Err(ApiError::invalid(
                at("content"),
                "'content' must be a string or a list of 'input_text' parts.",
            ));
        }
    };
    Ok(Turn {
        role: role.into(),
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Result<Valid, ApiError> {
        serde_json::from_value::<CreateBody>(v).unwrap().validate()
    }

    fn param(v: Value) -> String {
        body(v).unwrap_err().param.unwrap_or_default()
    }

    #[test]
    fn a_string_input_is_one_user_message_and_defaults_apply() {
        let v = body(json!({"model": "m", "input": "Xin chào"})).unwrap();
        assert_eq!(
            v.input,
            vec![Turn {
                role: "user".into(),
                content: "Xin chào".into()
            }]
        );
        assert!(v.store && !v.stream && v.file_search.is_none() && !v.include_results);
        assert_eq!(v.echo["tool_choice"], "auto");
        assert_eq!(v.echo["truncation"], "disabled");
    }

    #[test]
    fn messages_and_parts_are_read() {
        let v = body(json!({"model": "m", "input": [
            {"role": "developer", "content": "Be brief."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}
            ]},
        ]}))
        .unwrap();
        assert_eq!(v.input[0].role, "system");
        assert_eq!(v.input[1].content, "ab");
    }

    #[test]
    fn the_file_search_tool_is_checked() {
        let v = body(json!({"model": "m", "input": "q", "include": [INCLUDE_RESULTS],
            "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"], "max_num_results": 3}]}))
        .unwrap();
        let fs = v.file_search.unwrap();
        assert_eq!(
            (fs.vector_store_ids, fs.max_num_results),
            (vec!["vs_1".to_owned()], 3)
        );
        assert!(v.include_results);
        assert_eq!(v.echo["tools"][0]["max_num_results"], 3);
    }

    #[test]
    fn refusals_name_their_field() {
        let cases = [
            (
                json!({"model": "m", "input": "q", "frobnicate": 1}),
                "frobnicate",
            ),
            (
                json!({"model": "m", "input": "q", "reasoning": {"effort": "low"}}),
                "reasoning",
            ),
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": []}), "input"),
            (
                json!({"model": "m", "input": "q", "tools": [{"type": "web_search"}]}),
                "tools[0].type",
            ),
            (
                json!({"model": "m", "input": "q", "tools": [{"type": "file_search"}]}),
                "tools[0].vector_store_ids",
            ),
            (
                json!({"model": "m", "input": "q", "tools": [{"type": "file_search", "vector_store_ids": ["a"], "max_num_results": 51}]}),
                "tools[0].max_num_results",
            ),
            (
                json!({"model": "m", "input": "q", "include": ["message.output_text.logprobs"]}),
                "include[0]",
            ),
            (
                json!({"model": "m", "input": [{"role": "tool", "content": "x"}]}),
                "input[0].role",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call_output", "role": "user"}]}),
                "input[0].type",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]}),
                "input[0].content[0].type",
            ),
            (
                json!({"model": "m", "input": "q", "temperature": 3}),
                "temperature",
            ),
            (
                json!({"model": "m", "input": "q", "max_output_tokens": 0}),
                "max_output_tokens",
            ),
            (
                json!({"model": "m", "input": "q", "text": {"format": {"type": "json_object"}}}),
                "text.format",
            ),
            (
                json!({"model": "m", "input": "q", "tool_choice": "sometimes"}),
                "tool_choice",
            ),
        ];
        for (v, expected) in cases {
            assert_eq!(param(v.clone()), expected, "{v}");
        }
    }

    #[test]
    fn null_fields_are_absent() {
        let v = body(json!({"model": "m", "input": "q", "reasoning": null, "instructions": null}))
            .unwrap();
        assert!(v.instructions.is_none());
    }
}
