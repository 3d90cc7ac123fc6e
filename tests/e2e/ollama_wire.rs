//! Ollama's wire format, both sides, checked against examples transcribed from Ollama's API
//! documentation (`docs/api.md`): nfai answering `/api/*`, and nfai's Ollama client reading a
//! server that answers exactly like the documented examples.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};

use crate::common::{client, post as post_json, server};
use crate::upstream_support::{serve, start_with_config};

const DOC_CHAT_LINE: &str = r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The"},"done":false}"#;
const DOC_CHAT_FINAL: &str = r#"{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","message":{"role":"assistant","content":""},"done":true,"total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546000,"eval_count":282,"eval_duration":4535599000}"#;
const DOC_GENERATE_LINE: &str = r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","response":"The","done":false}"#;
const DOC_GENERATE_FINAL: &str = r#"{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","response":"","done":true,"total_duration":10706818083,"load_duration":6338219291,"prompt_eval_count":26,"prompt_eval_duration":130079000,"eval_count":259,"eval_duration":4232710000}"#;
const DOC_EMBED: &str = r#"{"model":"all-minilm","embeddings":[[0.010071029,-0.0017594862,0.05007221,0.04692972,0.054916814,0.008599704,0.105441414,-0.025878139,0.12958129,0.031952348]],"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":8}"#;
const DOC_TAGS: &str = r#"{"models":[{"name":"deepseek-r1:latest","model":"deepseek-r1:latest","modified_at":"2025-05-10T08:06:48.639712648-07:00","size":4683075271,"digest":"0a8c266910232fd3291e71e5ba1e058cc5af9d411192cf88b6d30e92b6e73163","details":{"parent_model":"","format":"gguf","family":"qwen2","families":["qwen2"],"parameter_size":"7.6B","quantization_level":"Q4_K_M"}}]}"#;
const DOC_PS: &str = r#"{"models":[{"name":"mistral:latest","model":"mistral:latest","size":5137025024,"digest":"2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8","details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],"parameter_size":"7.2B","quantization_level":"Q4_0"},"expires_at":"2024-06-04T14:38:31.83753-07:00","size_vram":5137025024}]}"#;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every field of the documented `doc` is in `ours`, with the same JSON type (recursively).
fn same_shape(doc: &Value, ours: &Value, path: &str) {
    match (doc, ours) {
        (Value::Object(d), Value::Object(o)) => {
            for (k, v) in d {
                let got = o
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} missing in {ours}"));
                same_shape(v, got, &format!("{path}.{k}"));
            }
        }
        (Value::Array(d), Value::Array(o)) => {
            if let (Some(d0), Some(o0)) = (d.first(), o.first()) {
                same_shape(d0, o0, &format!("{path}[0]"));
            }
        }
        _ => assert_eq!(kind(doc), kind(ours), "{path}: {ours}"),
    }
}

fn doc(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

async fn ndjson(path: &str, body: Value) -> Vec<Value> {
    let res = client()
        .post(format!("{}{path}", server().base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    res.text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfai_answers_in_the_documented_shapes() {
    let opts = json!({ "temperature": 0, "num_predict": 6 });
    let lines = ndjson("/api/chat", json!({"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "why is the sky blue?"}], "options": opts})).await;
    assert!(lines.len() >= 2, "{lines:?}");
    for l in &lines[..lines.len() - 1] {
        same_shape(&doc(DOC_CHAT_LINE), l, "chat");
        assert_eq!(l["done"], false);
    }
    let last = lines.last().unwrap();
    same_shape(&doc(DOC_CHAT_FINAL), last, "chat final");
    assert_eq!(
        (last["done"].as_bool(), last["done_reason"].as_str()),
        (Some(true), Some("length"))
    );
    assert_eq!(last["eval_count"], 6);

    let lines = ndjson(
        "/api/generate",
        json!({"model": "smollm2-135m-instruct", "prompt": "Why is the sky blue?", "options": opts}),
    )
    .await;
    same_shape(&doc(DOC_GENERATE_LINE), &lines[0], "generate");
    let mut final_doc = doc(DOC_GENERATE_FINAL);
    final_doc.as_object_mut().unwrap().remove("context");
    same_shape(&final_doc, lines.last().unwrap(), "generate final");

    let (status, one) = post_json(
        server(),
        "/api/chat",
        json!({"model": "smollm2-135m-instruct:latest", "stream": false, "options": opts,
        "messages": [{"role": "user", "content": "why is the sky blue?"}]}),
    )
    .await;
    assert_eq!(status, 200, "{one}");
    same_shape(&doc(DOC_CHAT_FINAL), &one, "chat stream=false");
    assert!(!one["message"]["content"].as_str().unwrap().is_empty());

    let (status, emb) = post_json(
        server(),
        "/api/embed",
        json!({"model": "all-minilm-l6-v2", "input": "Why is the sky blue?"}),
    )
    .await;
    assert_eq!(status, 200, "{emb}");
    same_shape(&doc(DOC_EMBED), &emb, "embed");
    assert_eq!(emb["embeddings"][0].as_array().unwrap().len(), 384);
    let (_, old) = post_json(
        server(),
        "/api/embeddings",
        json!({"model": "all-minilm-l6-v2", "prompt": "Why is the sky blue?"}),
    )
    .await;
    assert_eq!(old["embedding"].as_array().unwrap().len(), 384);

    for (path, fixture) in [("/api/tags", DOC_TAGS), ("/api/ps", DOC_PS)] {
        let v: Value = client()
            .get(format!("{}{path}", server().base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(!v["models"].as_array().unwrap().is_empty(), "{path}: {v}");
        same_shape(&doc(fixture), &v, path);
    }
    let v: Value = client()
        .get(format!("{}/api/version", server().base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["version"].is_string());

    let (status, err) = post_json(
        server(),
        "/api/chat",
        json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(status, 404);
    assert!(err["error"].is_string(), "Ollama's error shape: {err}");
}

/// A server answering like the documented examples, recording request bodies.
fn doc_server(seen: Arc<Mutex<Vec<Value>>>) -> Router {
    let s1 = seen.clone();
    let s2 = seen.clone();
    Router::new()
        .route(
            "/api/chat",
            post(move |axum::Json(body): axum::Json<Value>| async move {
                s1.lock().unwrap().push(body);
                let mut lines = String::new();
                for t in ["The", " sky", " is", " blue"] {
                    let mut l = doc(DOC_CHAT_LINE);
                    l["message"]["content"] = json!(t);
                    lines.push_str(&format!("{l}\n"));
                }
                lines.push_str(&format!("{DOC_CHAT_FINAL}\n"));
                ([("content-type", "application/x-ndjson")], lines)
            }),
        )
        .route(
            "/api/embed",
            post(move |axum::Json(body): axum::Json<Value>| async move {
                s2.lock().unwrap().push(body);
                ([("content-type", "application/json")], DOC_EMBED)
            }),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ollama_client_reads_documented_answers_and_maps_options() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fake = serve(doc_server(seen.clone())).await;
    let toml = format!(
        "serve = []\n[[upstreams]]\nname = \"doc\"\nnodes = [\"{}\"]\nnum_ctx = 2048\n\
         [[routes]]\nmodel = \"fixture\"\ntargets = [\"ollama:doc/llama3.2\"]\n\
         [[routes]]\nmodel = \"fixture-embed\"\nkind = \"embedding\"\ntargets = [\"ollama:doc/all-minilm\"]\n",
        fake.base
    );
    let s = start_with_config("ollama-doc", &toml);
    let (status, body) = post_json(&s, "/v1/chat/completions", json!({
        "model": "fixture", "messages": [{"role": "user", "content": "why is the sky blue?"}],
        "temperature": 0.5, "top_p": 0.25, "top_k": 40, "seed": 7, "max_tokens": 20, "stop": ["\n"],
        "presence_penalty": 0.5, "frequency_penalty": 0.25, "repetition_penalty": 1.5,
        "repeat_last_n": -1
    })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "The sky is blue");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 26, "completion_tokens": 282, "total_tokens": 308,
               "prompt_tokens_details": {"cached_tokens": 0}})
    );
    let sent = seen.lock().unwrap()[0].clone();
    assert_eq!(sent["model"], "llama3.2");
    // A client that does not stream is answered from one whole answer (this server streams
    // regardless, and the lines are read all the same).
    assert_eq!(sent["stream"], false);
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "why is the sky blue?"}])
    );
    assert_eq!(
        sent["options"],
        json!({
            "temperature": 0.5, "top_p": 0.25, "top_k": 40, "seed": 7, "num_predict": 20, "stop": ["\n"],
            "repeat_penalty": 1.5, "repeat_last_n": -1, "presence_penalty": 0.5,
            "frequency_penalty": 0.25, "num_ctx": 2048
        })
    );
    assert!(sent.get("keep_alive").is_none());

    // An Ollama client's keep_alive reaches the upstream.
    let (status, _) = post_json(
        &s,
        "/api/chat",
        json!({"model": "fixture", "stream": false, "keep_alive": "10m",
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(seen.lock().unwrap()[1]["keep_alive"], 600);

    let (status, emb) = post_json(
        &s,
        "/v1/embeddings",
        json!({"model": "fixture-embed", "input": "Why is the sky blue?"}),
    )
    .await;
    assert_eq!(status, 200, "{emb}");
    assert_eq!(emb["data"][0]["embedding"].as_array().unwrap().len(), 10);
    assert_eq!(emb["usage"]["prompt_tokens"], 8);
    assert_eq!(
        seen.lock().unwrap()[2]["input"],
        json!(["Why is the sky blue?"])
    );
}

#[tokio::test]
async fn show_describes_native_models_from_their_files() {
    let (status, v) = post_json(server(), "/api/show", json!({"model": "gemma-3-270m"})).await;
    assert_eq!(status, 200, "{v}");
    let d = &v["details"];
    assert_eq!(
        (&d["format"], &d["family"], &d["quantization_level"]),
        (&json!("gguf"), &json!("gemma3"), &json!("Q4_K_M")),
        "{v}"
    );
    assert!(d["parameter_size"].as_str().unwrap().ends_with('M'), "{v}");
    let info = &v["model_info"];
    assert_eq!(info["general.architecture"], "gemma3");
    assert_eq!(info["gemma3.block_count"], 18);
    assert!(info["general.parameter_count"].as_u64().unwrap() > 200_000_000);
    assert!(
        info["tokenizer.ggml.tokens"].is_null(),
        "arrays are not listed"
    );
    assert_eq!(v["capabilities"], json!(["completion"]));
    assert!(v["modified_at"].is_string());
    // Gemma 3 270M is a base model: its file has no chat template, and none is made up.
    assert_eq!(v["template"], "", "the template in use: {v}");
    assert!(v["parameters"].as_str().unwrap().contains("top_k"), "{v}");

    let (status, v) = post_json(
        server(),
        "/api/show",
        json!({"name": "all-minilm-l6-v2:latest"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["details"]["family"], "bert");
    assert_eq!(v["model_info"]["bert.embedding_length"], 384);
    assert_eq!(v["capabilities"], json!(["embedding"]));

    let (status, err) = post_json(server(), "/api/show", json!({"model": "nope"})).await;
    assert_eq!(status, 404, "{err}");
}
