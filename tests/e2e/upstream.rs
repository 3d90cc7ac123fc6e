//! nfai in front of another nfai: the default test server is the upstream, reached both as an
//! OpenAI-compatible server (`remote-*` routes) and as an Ollama server (`ollama-*` routes).
//! Greedy answers and embeddings through either path equal the direct ones.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::common::{Server, client, greedy_chat, post, server, sse_data};
use crate::upstream_support::start_with_config;

/// Routes every name to the default test server.
pub fn routed_server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let peer = &server().base;
        let toml = format!(
            "serve = []\n\
             [[upstreams]]\nname = \"peer\"\nnodes = [\"{peer}\"]\nhealth_path = \"/health\"\nhealth_interval_ms = 500\n\
             [[routes]]\nmodel = \"remote-smollm2\"\ntargets = [\"openai:peer/smollm2-135m-instruct\"]\n\
             [[routes]]\nmodel = \"ollama-smollm2\"\ntargets = [\"ollama:peer/smollm2-135m-instruct\"]\n\
             [[routes]]\nmodel = \"remote-minilm\"\nkind = \"embedding\"\ntargets = [\"openai:peer/all-minilm-l6-v2\"]\n\
             [[routes]]\nmodel = \"ollama-minilm\"\nkind = \"embedding\"\ntargets = [\"ollama:peer/all-minilm-l6-v2\"]\n"
        );
        start_with_config("routed", &toml)
    })
}

fn with_model(mut body: Value, model: &str) -> Value {
    body["model"] = json!(model);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_chat_through_either_protocol_matches_direct() {
    let req = greedy_chat("Name a colour.", 12);
    let (status, direct) = post(server(), "/v1/chat/completions", req.clone()).await;
    assert_eq!(status, 200, "{direct}");
    for model in ["remote-smollm2", "ollama-smollm2"] {
        let (status, via) = post(
            routed_server(),
            "/v1/chat/completions",
            with_model(req.clone(), model),
        )
        .await;
        assert_eq!(status, 200, "{model}: {via}");
        assert_eq!(via["model"], model);
        assert_eq!(
            via["choices"][0]["message"]["content"], direct["choices"][0]["message"]["content"],
            "{model}"
        );
        assert_eq!(
            via["choices"][0]["finish_reason"], direct["choices"][0]["finish_reason"],
            "{model}"
        );
        // The same counts; how much of the prompt came from a prefix cache may differ.
        for field in ["prompt_tokens", "completion_tokens", "total_tokens"] {
            assert_eq!(via["usage"][field], direct["usage"][field], "{model}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_chat_through_an_upstream() {
    let mut req = greedy_chat("Say hello.", 8);
    req["stream"] = json!(true);
    req["stream_options"] = json!({ "include_usage": true });
    let direct = sse_data(
        client()
            .post(format!("{}/v1/chat/completions", server().base))
            .json(&req)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let text = |data: &[String]| -> String {
        data.iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    };
    for model in ["remote-smollm2", "ollama-smollm2"] {
        let res = client()
            .post(format!("{}/v1/chat/completions", routed_server().base))
            .json(&with_model(req.clone(), model))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let data = sse_data(res).await;
        assert_eq!(text(&data), text(&direct), "{model}");
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
        assert!(
            usage["usage"]["completion_tokens"].as_u64().unwrap() >= 1,
            "{usage}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_embeddings_through_an_upstream() {
    let req = json!({"model": "smollm2-135m-instruct", "prompt": "The capital of France is", "max_tokens": 6, "temperature": 0});
    let (_, direct) = post(server(), "/v1/completions", req.clone()).await;
    for model in ["remote-smollm2", "ollama-smollm2"] {
        let (status, via) = post(
            routed_server(),
            "/v1/completions",
            with_model(req.clone(), model),
        )
        .await;
        assert_eq!(status, 200, "{via}");
        assert_eq!(
            via["choices"][0]["text"], direct["choices"][0]["text"],
            "{model}"
        );
    }
    let req = json!({"model": "all-minilm-l6-v2", "input": ["The cat sits on the mat", "A dog"]});
    let (_, direct) = post(server(), "/v1/embeddings", req.clone()).await;
    for model in ["remote-minilm", "ollama-minilm"] {
        let (status, via) = post(
            routed_server(),
            "/v1/embeddings",
            with_model(req.clone(), model),
        )
        .await;
        assert_eq!(status, 200, "{via}");
        for i in 0..2 {
            let a = direct["data"][i]["embedding"].as_array().unwrap();
            let b = via["data"][i]["embedding"].as_array().unwrap();
            assert_eq!(a.len(), b.len());
            let max = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs())
                .fold(0.0, f64::max);
            assert!(max < 1e-5, "{model}: {max}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_names_are_listed_and_upstream_errors_pass_through() {
    let list: Value = client()
        .get(format!("{}/v1/models", routed_server().base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in [
        "remote-smollm2",
        "ollama-smollm2",
        "remote-minilm",
        "ollama-minilm",
    ] {
        assert!(ids.contains(&id), "{list}");
    }
    for m in list["data"].as_array().unwrap() {
        assert_eq!(m["object"], "model");
        assert_eq!(m["owned_by"], "nfai");
    }
    // A client error at the upstream is the client's error here too, and is not retried.
    let (status, body) = post(
        routed_server(),
        "/v1/chat/completions",
        with_model(greedy_chat("x", 0), "remote-smollm2"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = post(
        routed_server(),
        "/v1/embeddings",
        json!({"model": "remote-smollm2", "input": "x"}),
    )
    .await;
    assert_eq!(status, 400);
}

/// What the OpenAI client puts on the wire: the node's path prefix before the API path, the key
/// from `api_key_file` as a bearer token, the target's model name, and only the fields the client
/// set (no nfai extension such as `keep_alive`), with their values unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_client_sends_the_key_the_prefix_and_the_set_fields() {
    use std::sync::{Arc, Mutex};

    use crate::upstream_support::serve;

    type Seen = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let handler = move |uri: axum::http::Uri,
                        headers: axum::http::HeaderMap,
                        axum::Json(body): axum::Json<Value>| {
        let log = log.clone();
        async move {
            let auth = headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string());
            log.lock()
                .unwrap()
                .push((uri.path().to_string(), auth, body));
            axum::Json(
                json!({"id": "x", "object": "chat.completion", "created": 0, "model": "up",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "caf\u{e9} \"ok\""}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}),
            )
        }
    };
    let up = serve(
        axum::Router::new().route("/openai/v1/chat/completions", axum::routing::post(handler)),
    )
    .await;
    let key = std::env::temp_dir().join(format!("nfai-wire-key-{}", std::process::id()));
    std::fs::write(&key, "sk-test-123\n").unwrap();
    let toml = format!(
        "serve = []\n[[upstreams]]\nname = \"cloud\"\nnodes = [\"{}/openai/\"]\napi_key_file = {:?}\n\
         [[routes]]\nmodel = \"m\"\ntargets = [\"openai:cloud/up-model\"]\n",
        up.base, key
    );
    let s = start_with_config("wire", &toml);
    let req = json!({"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi \"there\""}],
        "temperature": 0.7, "top_p": 0.9, "seed": 42, "max_tokens": 3, "stop": ["\n\n"], "keep_alive": "5m"});
    let (status, body) = post(&s, "/v1/chat/completions", req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "caf\u{e9} \"ok\"");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
               "prompt_tokens_details": {"cached_tokens": 0}})
    );
    let _ = std::fs::remove_file(&key);
    let seen = seen.lock().unwrap();
    let (path, auth, sent) = &seen[0];
    assert_eq!(path, "/openai/v1/chat/completions");
    assert_eq!(auth.as_deref(), Some("Bearer sk-test-123"));
    assert_eq!(
        *sent,
        json!({"model": "up-model", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi \"there\""}],
            "temperature": 0.7, "top_p": 0.9, "seed": 42, "max_tokens": 3, "stop": ["\n\n"], "stream": false})
    );
}
