//! Structured outputs and tool calls on the default model (SmolLM2-135M-Instruct), sampled at
//! temperature 1: every answer that ends with `stop` (or `tool_calls`) parses and follows its
//! schema; answers cut by `max_tokens` end with `length`. Tool calls come back as OpenAI's
//! `tool_calls` in JSON and stream answers and as Ollama's `message.tool_calls`; schemas and
//! tools the engine cannot use are refused with a 400 that names the field.

use futures::future::join_all;
use serde_json::{Value, json};

use crate::common::{assert_error, client, post, server, sse_data};

const MODEL: &str = "smollm2-135m-instruct";

fn ticket_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "intent": { "enum": ["delivery", "refund", "complaint", "other"] },
            "urgent": { "type": "boolean" },
            "order": { "type": "integer", "minimum": 0 }
        },
        "required": ["intent", "urgent", "order"],
        "additionalProperties": false
    })
}

fn is_ticket(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    o.len() == 3
        && matches!(
            o["intent"].as_str(),
            Some("delivery" | "refund" | "complaint" | "other")
        )
        && o["urgent"].is_boolean()
        // Any non-negative integer, also one beyond u64 (JSON numbers are unbounded), which
        // serde_json reads as a float: its text must be digits only.
        && (o["order"].is_u64() || o["order"].as_f64().is_some_and(|n| n >= 0.0))
}

fn classify(seed: u64) -> Value {
    json!({
        "model": MODEL,
        "messages": [
            { "role": "system", "content": "Classify the customer's message as JSON." },
            { "role": "user", "content": "Where is my order #4521? It was due yesterday." }
        ],
        "temperature": 1.0,
        "seed": seed,
        "max_tokens": 40,
        "response_format": {
            "type": "json_schema",
            "json_schema": { "name": "ticket", "schema": ticket_schema(), "strict": true }
        }
    })
}

#[tokio::test]
async fn two_hundred_sampled_answers_follow_the_schema() {
    let mut stopped = 0;
    for batch in 0..25u64 {
        let answers = join_all(
            (0..8u64).map(|i| post(server(), "/v1/chat/completions", classify(batch * 8 + i))),
        )
        .await;
        for (status, body) in answers {
            assert_eq!(status, 200, "{body}");
            let choice = &body["choices"][0];
            let content = choice["message"]["content"].as_str().unwrap();
            match choice["finish_reason"].as_str() {
                Some("stop") => {
                    let v: Value = serde_json::from_str(content)
                        .unwrap_or_else(|e| panic!("{content:?} does not parse: {e}"));
                    let order = content
                        .split("\"order\":")
                        .nth(1)
                        .map(|t| t.trim_end_matches('}'))
                        .unwrap_or_default();
                    assert!(
                        is_ticket(&v) && order.bytes().all(|b| b.is_ascii_digit()),
                        "{content} does not follow the schema"
                    );
                    stopped += 1;
                }
                Some("length") => {}
                other => panic!("finish_reason {other:?}: {body}"),
            }
        }
    }
    assert!(stopped >= 100, "only {stopped} of 200 answers finished");
}

#[tokio::test]
async fn json_object_mode_and_the_length_limit() {
    let mut body = classify(7);
    body["response_format"] = json!({ "type": "json_object" });
    body["max_tokens"] = json!(60);
    let (status, resp) = post(server(), "/v1/chat/completions", body.clone()).await;
    assert_eq!(status, 200, "{resp}");
    let choice = &resp["choices"][0];
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(content.starts_with('{'), "{content}");
    if choice["finish_reason"] == "stop" {
        assert!(serde_json::from_str::<Value>(content).unwrap().is_object());
    }
    let mut short = classify(8);
    short["max_tokens"] = json!(3);
    let (status, resp) = post(server(), "/v1/chat/completions", short).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["choices"][0]["finish_reason"], "length", "{resp}");
}

fn order_tools() -> Value {
    json!([
        {
            "type": "function",
            "function": {
                "name": "get_order_status",
                "description": "Look up where an order is.",
                "parameters": {
                    "type": "object",
                    "properties": { "order_id": { "type": "integer" } },
                    "required": ["order_id"],
                    "additionalProperties": false
                }
            }
        },
        {
            "type": "function",
            "function": {
                "name": "open_ticket",
                "parameters": {
                    "type": "object",
                    "properties": { "summary": { "type": "string", "maxLength": 40 } },
                    "required": ["summary"],
                    "additionalProperties": false
                }
            }
        }
    ])
}

fn tool_request(choice: Value, stream: bool) -> Value {
    json!({
        "model": MODEL,
        "messages": [{ "role": "user", "content": "Where is my order 4521?" }],
        "tools": order_tools(),
        "tool_choice": choice,
        "temperature": 1.0,
        "seed": 3,
        "max_tokens": 60,
        "stream": stream
    })
}

fn assert_call(call: &Value, name: Option<&str>) {
    assert_eq!(call["type"], "function", "{call}");
    assert!(
        call["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{call}"
    );
    let f = &call["function"];
    let text = f["arguments"].as_str().unwrap();
    let args: Value = serde_json::from_str(text).unwrap();
    match f["name"].as_str().unwrap() {
        "get_order_status" => {
            // A JSON integer, of any size (a schema's `integer` has no bound), as written.
            let raw: std::collections::HashMap<String, Box<serde_json::value::RawValue>> =
                serde_json::from_str(text).unwrap();
            let n = raw["order_id"].get().trim_start_matches('-');
            assert!(
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
                "{call}"
            );
        }
        "open_ticket" => assert!(args["summary"].is_string(), "{call}"),
        other => panic!("unknown tool {other}"),
    }
    if let Some(name) = name {
        assert_eq!(f["name"], name);
    }
}

#[tokio::test]
async fn required_and_named_tool_choices_give_tool_calls() {
    for seed in 0..4 {
        let mut body = tool_request(json!("required"), false);
        body["seed"] = json!(seed);
        let (status, resp) = post(server(), "/v1/chat/completions", body).await;
        assert_eq!(status, 200, "{resp}");
        let choice = &resp["choices"][0];
        if choice["finish_reason"] == "length" {
            continue;
        }
        assert_eq!(choice["finish_reason"], "tool_calls", "{resp}");
        assert!(choice["message"]["content"].is_null(), "{resp}");
        assert_call(&choice["message"]["tool_calls"][0], None);
    }
    let named = json!({ "type": "function", "function": { "name": "open_ticket" } });
    let (status, resp) = post(server(), "/v1/chat/completions", tool_request(named, false)).await;
    assert_eq!(status, 200, "{resp}");
    let choice = &resp["choices"][0];
    if choice["finish_reason"] != "length" {
        assert_eq!(choice["finish_reason"], "tool_calls", "{resp}");
        assert_call(&choice["message"]["tool_calls"][0], Some("open_ticket"));
    }
}

#[tokio::test]
async fn streamed_tool_calls_arrive_whole_with_their_finish_reason() {
    let named = json!({ "type": "function", "function": { "name": "get_order_status" } });
    let res = client()
        .post(format!("{}/v1/chat/completions", server().base))
        .json(&tool_request(named, true))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let data = sse_data(res).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let last = &chunks.last().unwrap()["choices"][0];
    if last["finish_reason"] == "length" {
        return;
    }
    assert_eq!(last["finish_reason"], "tool_calls", "{data:?}");
    let call = &last["delta"]["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert_call(call, Some("get_order_status"));
    for c in &chunks[..chunks.len() - 1] {
        let content = c["choices"][0]["delta"]["content"].as_str().unwrap_or("");
        assert!(content.is_empty(), "text leaked from a tool call: {c}");
    }
}

#[tokio::test]
async fn auto_and_none_tool_choices() {
    for seed in 0..3 {
        let mut body = tool_request(json!("auto"), false);
        body["seed"] = json!(seed);
        let (status, resp) = post(server(), "/v1/chat/completions", body).await;
        assert_eq!(status, 200, "{resp}");
        let choice = &resp["choices"][0];
        match choice["finish_reason"].as_str() {
            Some("tool_calls") => assert_call(&choice["message"]["tool_calls"][0], None),
            Some("stop" | "length") => {
                let text = choice["message"]["content"].as_str().unwrap();
                assert!(!text.starts_with('<'), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }
    let (status, resp) = post(
        server(),
        "/v1/chat/completions",
        tool_request(json!("none"), false),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert!(resp["choices"][0]["message"]["tool_calls"].is_null());
    assert!(resp["choices"][0]["message"]["content"].is_string());
}

#[tokio::test]
async fn a_tool_result_goes_back_into_the_conversation() {
    let body = json!({
        "model": MODEL,
        "messages": [
            { "role": "user", "content": "Where is my order 4521?" },
            { "role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": { "name": "get_order_status", "arguments": "{\"order_id\":4521}" }
            }]},
            { "role": "tool", "tool_call_id": "call_1", "content": "Shipped, arrives Friday." }
        ],
        "tools": order_tools(),
        "tool_choice": "none",
        "temperature": 0,
        "max_tokens": 24
    });
    let (status, resp) = post(server(), "/v1/chat/completions", body).await;
    assert_eq!(status, 200, "{resp}");
    assert!(
        resp["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
}

#[tokio::test]
async fn ollama_chat_takes_format_and_tools() {
    let body = json!({
        "model": MODEL,
        "messages": [{ "role": "user", "content": "Where is my order #4521? It is late." }],
        "format": ticket_schema(),
        "stream": false,
        "options": { "temperature": 1.0, "seed": 5, "num_predict": 40 }
    });
    let (status, resp) = post(server(), "/api/chat", body).await;
    assert_eq!(status, 200, "{resp}");
    if resp["done_reason"] == "stop" {
        let v: Value = serde_json::from_str(resp["message"]["content"].as_str().unwrap()).unwrap();
        assert!(is_ticket(&v), "{resp}");
    }
    let body = json!({
        "model": MODEL,
        "messages": [{ "role": "user", "content": "Reply in JSON." }],
        "format": "json",
        "stream": false,
        "options": { "temperature": 0, "num_predict": 40 }
    });
    let (status, resp) = post(server(), "/api/chat", body).await;
    assert_eq!(status, 200, "{resp}");
    assert!(
        resp["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with('{'),
        "{resp}"
    );

    // Streamed, with tools: plain text streams; a call arrives on the last line.
    for seed in 0..3 {
        let body = json!({
            "model": MODEL,
            "messages": [{ "role": "user", "content": "Where is my order 4521?" }],
            "tools": order_tools(),
            "options": { "temperature": 1.0, "seed": seed, "num_predict": 60 }
        });
        let text = client()
            .post(format!("{}/api/chat", server().base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let last = lines.last().unwrap();
        assert_eq!(last["done"], true, "{text}");
        if let Some(calls) = last["message"]["tool_calls"].as_array() {
            let f = &calls[0]["function"];
            assert!(f["arguments"].is_object(), "{last}");
            assert!(matches!(
                f["name"].as_str(),
                Some("get_order_status" | "open_ticket")
            ));
        }
    }
}

#[tokio::test]
async fn schemas_and_tools_the_engine_cannot_use_are_400s() {
    let cases = [
        (
            json!({ "response_format": { "type": "json_schema", "json_schema": {
                "name": "x", "schema": { "type": "objekt" } } } }),
            "response_format.json_schema",
        ),
        (
            json!({ "response_format": { "type": "json_schema", "json_schema": {
                "name": "x", "schema": { "$ref": "#/$defs/nowhere" } } } }),
            "response_format.json_schema",
        ),
        (
            json!({ "response_format": { "type": "json_schema" } }),
            "response_format.json_schema",
        ),
        (
            json!({ "tools": [{ "type": "function", "function": {
                "name": "f", "parameters": { "type": "string" } } }] }),
            "tools[0].function.parameters",
        ),
        (
            json!({ "tools": [{ "type": "function", "function": {
                "name": "f", "parameters": { "type": "object", "properties": {
                    "a": { "type": "strnig" } } } } }] }),
            "tools[0].function.parameters",
        ),
        (
            json!({ "tools": [{ "type": "function", "function": { "name": "f" } }],
                    "tool_choice": { "type": "function", "function": { "name": "g" } } }),
            "tool_choice",
        ),
        (json!({ "tool_choice": "required" }), "tool_choice"),
    ];
    for (extra, param) in cases {
        let mut body = json!({
            "model": MODEL,
            "messages": [{ "role": "user", "content": "hi" }],
            "max_tokens": 4
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, resp) = post(server(), "/v1/chat/completions", body).await;
        assert_eq!(status, 400, "{param}: {resp}");
        assert_error(
            &resp,
            "invalid_request_error",
            Some(param),
            Some("invalid_value"),
        );
    }
    let body = json!({
        "model": MODEL,
        "messages": [{ "role": "user", "content": "hi" }],
        "format": { "type": "objekt" },
        "stream": false
    });
    let (status, resp) = post(server(), "/api/chat", body).await;
    assert_eq!(status, 400, "{resp}");
    assert!(
        resp["error"].as_str().is_some_and(|e| e.contains("format")),
        "{resp}"
    );
}

/// A structured answer copies values out of the prompt: the catalog's repetition penalty, meant
/// for free text, does not apply to it (greedy, the default model copies these exactly). A
/// server of its own: decoded in a batch beside other tests' requests, a near tie of this
/// small model can go the other way.
#[tokio::test]
async fn structured_answers_copy_values_from_the_prompt() {
    let own = crate::common::start_with(crate::common::config_args("structured-copy", ""));
    let server = || &own;
    let mut body = tool_request(json!("required"), false);
    body["messages"] = json!([{ "role": "user", "content": "Check order #10077 please" }]);
    body["temperature"] = json!(0);
    let (status, resp) = post(server(), "/v1/chat/completions", body.clone()).await;
    assert_eq!(status, 200, "{resp}");
    let call = &resp["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(call["arguments"], r#"{"order_id":10077}"#, "{resp}");
    // The same request with the penalty set by the request invents digits instead.
    body["repetition_penalty"] = json!(1.1);
    body["repeat_last_n"] = json!(64);
    let (status, resp) = post(server(), "/v1/chat/completions", body).await;
    assert_eq!(status, 200, "{resp}");
    assert!(!resp.to_string().contains("10077"), "{resp}");

    let lead = json!({
        "model": MODEL,
        "temperature": 0,
        "messages": [{ "role": "user", "content":
            "Extract the lead: Hi, I'm Nguyen Van An from Minh Phat Logistics, call me at 0912 345 678." }],
        "response_format": { "type": "json_schema", "json_schema": { "name": "lead", "schema": {
            "type": "object",
            "properties": {
                "name": { "type": "string" },
                "company": { "type": "string" },
                "phone": { "type": "string" }
            },
            "required": ["name", "company", "phone"],
            "additionalProperties": false
        } } }
    });
    let (status, resp) = post(server(), "/v1/chat/completions", lead).await;
    assert_eq!(status, 200, "{resp}");
    let v: Value =
        serde_json::from_str(resp["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(v["name"], "Nguyen Van An", "{v}");
    assert_eq!(v["phone"], "0912 345 678", "{v}");
}
