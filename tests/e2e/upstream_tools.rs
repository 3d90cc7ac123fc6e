//! Tools and structured outputs through upstreams: `tools`, `tool_choice` and `response_format`
//! reach an OpenAI-compatible upstream unchanged and an Ollama upstream as its `tools` and
//! `format`; the calls they answer come back as OpenAI's `tool_calls` (and Ollama's), whole and
//! streamed, on either of nfai's APIs.

use serde_json::{Value, json};

use crate::common::{Server, client, post, sse_data};
use crate::upstream_support::{
    FAKE_CALL, FAKE_TEXT, Fake, Seen, ollama_tool_node, openai_tool_node, serve, start_with_config,
};

/// nfai routing `oa` to the OpenAI fake and `ol` to the Ollama fake, and the fakes' logs.
async fn setup(name: &str) -> (Server, Seen, Seen, Fake, Fake) {
    let (oa_seen, ol_seen) = (Seen::default(), Seen::default());
    let oa = serve(openai_tool_node(oa_seen.clone())).await;
    let ol = serve(ollama_tool_node(ol_seen.clone())).await;
    let toml = format!(
        "serve = []\n\
         [[upstreams]]\nname = \"oa\"\nnodes = [\"{}\"]\n\
         [[upstreams]]\nname = \"ol\"\nnodes = [\"{}\"]\n\
         [[routes]]\nmodel = \"oa\"\ntargets = [\"openai:oa/up-model\"]\n\
         [[routes]]\nmodel = \"ol\"\ntargets = [\"ollama:ol/llama3.2\"]\n",
        oa.base, ol.base
    );
    let s = start_with_config(name, &toml);
    (s, oa_seen, ol_seen, oa, ol)
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": FAKE_CALL, "description": "Looks an order up.",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}},
        {"type": "function", "function": {"name": "cancel_order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "integer"}}}}}
    ])
}

fn last(seen: &Seen) -> Value {
    seen.lock().unwrap().last().cloned().unwrap()
}

/// The one call the fakes make, as OpenAI's `tool_calls` shows it.
fn assert_call(calls: &Value) {
    let c = &calls[0];
    assert_eq!(c["type"], "function", "{calls}");
    assert!(c["id"].as_str().unwrap().starts_with("call_"), "{calls}");
    assert_eq!(c["function"]["name"], FAKE_CALL);
    let args: Value = serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"order_id": 4521}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_pass_through_and_calls_come_back() {
    let (s, oa_seen, ol_seen, _oa, _ol) = setup("up-tools").await;
    let named = json!({"type": "function", "function": {"name": FAKE_CALL}});
    for model in ["oa", "ol"] {
        let req = json!({"model": model, "messages": [{"role": "user", "content": "Where is order 4521?"}],
            "tools": tools(), "tool_choice": named});
        let (status, body) = post(&s, "/v1/chat/completions", req.clone()).await;
        assert_eq!(status, 200, "{model}: {body}");
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{model}: {body}");
        assert_eq!(choice["message"]["content"], Value::Null, "{body}");
        assert_call(&choice["message"]["tool_calls"]);
        assert_eq!(body["usage"]["completion_tokens"], 4);

        // Streamed: the call arrives whole in the last chunk, with its index.
        let mut streamed = req.clone();
        streamed["stream"] = json!(true);
        let res = client()
            .post(format!("{}/v1/chat/completions", s.base))
            .json(&streamed)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let data = sse_data(res).await;
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = data
            .iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect();
        let end = chunks
            .iter()
            .find(|c| c["choices"][0]["finish_reason"].is_string())
            .unwrap();
        assert_eq!(
            end["choices"][0]["finish_reason"], "tool_calls",
            "{model}: {data:?}"
        );
        let calls = &end["choices"][0]["delta"]["tool_calls"];
        assert_eq!(calls[0]["index"], 0);
        assert_call(calls);
        assert!(
            chunks.iter().all(|c| c["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or("")
                .is_empty()),
            "no call text leaks as content: {data:?}"
        );
    }
    // What each upstream was sent, for the JSON answer and the stream alike.
    for sent in oa_seen.lock().unwrap().iter() {
        assert_eq!(sent["tools"], tools());
        assert_eq!(sent["tool_choice"], named);
        assert_eq!(sent["model"], "up-model");
    }
    for sent in ol_seen.lock().unwrap().iter() {
        // Ollama has no tool_choice: a named choice offers only the named tool.
        assert_eq!(sent["tools"], json!([tools()[0]]));
        assert!(sent.get("tool_choice").is_none(), "{sent}");
        assert_eq!(sent["model"], "llama3.2");
    }
    assert_eq!(oa_seen.lock().unwrap().len(), 2);
    assert_eq!(ol_seen.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_formats_pass_through() {
    let (s, oa_seen, ol_seen, _oa, _ol) = setup("up-formats").await;
    let schema =
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
    let rf = json!({"type": "json_schema", "json_schema": {"name": "lead", "strict": true, "schema": schema}});
    for model in ["oa", "ol"] {
        for stream in [false, true] {
            let req = json!({"model": model, "messages": [{"role": "user", "content": "Extract the lead."}],
                "response_format": rf, "stream": stream});
            let res = client()
                .post(format!("{}/v1/chat/completions", s.base))
                .json(&req)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 200, "{model}");
            let content = if stream {
                sse_data(res)
                    .await
                    .iter()
                    .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                    .filter_map(|c| {
                        c["choices"][0]["delta"]["content"]
                            .as_str()
                            .map(str::to_string)
                    })
                    .collect::<String>()
            } else {
                let v: Value = res.json().await.unwrap();
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            assert_eq!(content, FAKE_TEXT, "{model}");
        }
    }
    assert_eq!(last(&oa_seen)["response_format"], rf);
    assert_eq!(last(&ol_seen)["format"], schema);

    // json_object, and Ollama's own `format` on /api/chat, either way.
    let req = json!({"model": "oa", "messages": [{"role": "user", "content": "JSON please."}],
        "response_format": {"type": "json_object"}});
    let (status, _) = post(&s, "/v1/chat/completions", req).await;
    assert_eq!(status, 200);
    assert_eq!(
        last(&oa_seen)["response_format"],
        json!({"type": "json_object"})
    );
    let (status, body) = post(&s, "/v1/chat/completions", json!({"model": "ol",
        "messages": [{"role": "user", "content": "JSON please."}], "response_format": {"type": "json_object"}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(last(&ol_seen)["format"], "json");
    for (model, seen) in [("oa", &oa_seen), ("ol", &ol_seen)] {
        let (status, body) = post(
            &s,
            "/api/chat",
            json!({"model": model, "stream": false, "format": schema,
            "messages": [{"role": "user", "content": "Extract the lead."}]}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message"]["content"], FAKE_TEXT);
        let sent = last(seen);
        match model {
            "oa" => assert_eq!(
                sent["response_format"],
                json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}})
            ),
            _ => assert_eq!(sent["format"], schema),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_chat_gets_calls_from_either_upstream() {
    let (s, oa_seen, ol_seen, _oa, _ol) = setup("up-ollama-tools").await;
    for model in ["oa", "ol"] {
        for stream in [false, true] {
            let req = json!({"model": model, "stream": stream, "tools": tools(),
                "messages": [{"role": "user", "content": "Where is order 4521?"}]});
            let res = client()
                .post(format!("{}/api/chat", s.base))
                .json(&req)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 200, "{model}");
            let text = res.text().await.unwrap();
            let done: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
            assert_eq!(done["done"], true, "{text}");
            let call = &done["message"]["tool_calls"][0]["function"];
            assert_eq!(call["name"], FAKE_CALL, "{model} stream={stream}: {text}");
            assert_eq!(call["arguments"], json!({"order_id": 4521}));
        }
    }
    assert_eq!(last(&oa_seen)["tools"], tools());
    assert!(last(&oa_seen).get("tool_choice").is_none());
    assert_eq!(last(&ol_seen)["tools"], tools());
}

/// A conversation that goes on after a call: the upstream sees the call as `tool_calls` and the
/// result answering it (by id, for OpenAI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earlier_calls_and_results_reach_the_upstream() {
    let (s, oa_seen, ol_seen, _oa, _ol) = setup("up-history").await;
    let messages = json!([
        {"role": "user", "content": "Where is order 4521?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_abc", "type": "function",
            "function": {"name": FAKE_CALL, "arguments": "{\"order_id\":4521}"}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "{\"status\":\"shipped\"}"}
    ]);
    for model in ["oa", "ol"] {
        let (status, body) = post(
            &s,
            "/v1/chat/completions",
            json!({"model": model, "messages": messages}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], FAKE_TEXT);
    }
    let sent = last(&oa_seen)["messages"].clone();
    let call = &sent[1]["tool_calls"][0];
    assert_eq!(sent[1]["content"], Value::Null, "{sent}");
    assert_eq!(call["function"]["name"], FAKE_CALL);
    assert_eq!(call["function"]["arguments"], "{\"order_id\":4521}");
    assert_eq!(sent[2]["role"], "tool");
    assert_eq!(sent[2]["tool_call_id"], call["id"], "{sent}");
    assert_eq!(sent[2]["content"], "{\"status\":\"shipped\"}");
    let sent = last(&ol_seen)["messages"].clone();
    assert_eq!(
        sent[1]["tool_calls"],
        json!([{"function": {"name": FAKE_CALL, "arguments": {"order_id": 4521}}}]),
        "{sent}"
    );
    assert_eq!(
        sent[2],
        json!({"role": "tool", "content": "{\"status\":\"shipped\"}"})
    );
}
