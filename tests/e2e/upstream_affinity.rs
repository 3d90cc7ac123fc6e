//! Model affinity: three Ollama nodes with different resident models (`/api/ps`); requests go to
//! the node that has their model.

use std::time::Duration;

use serde_json::json;

use crate::common::{client, post};
use crate::upstream_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_to_the_node_with_the_model_resident() {
    let a = serve(ollama_node("node-a", "alpha:latest")).await;
    let b = serve(ollama_node("node-b", "beta")).await;
    let c = serve(ollama_node("node-c", "gamma")).await;
    let toml = format!(
        "serve = []\n[[upstreams]]\nname = \"trio\"\nnodes = [\"{}\", \"{}\", \"{}\"]\nhealth_interval_ms = 100\n\
         [[routes]]\nmodel = \"alpha\"\ntargets = [\"ollama:trio/alpha\"]\n\
         [[routes]]\nmodel = \"beta\"\ntargets = [\"ollama:trio/beta\"]\n\
         [[routes]]\nmodel = \"gamma\"\ntargets = [\"ollama:trio/gamma\"]\n",
        a.base, b.base, c.base
    );
    let s = start_with_config("affinity", &toml);
    // Wait for the residency poll: every route reports ready.
    for _ in 0..50 {
        let list: serde_json::Value = client()
            .get(format!("{}/v1/models", s.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ready = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| ["alpha", "beta", "gamma"].contains(&m["id"].as_str().unwrap_or("")))
            .all(|m| m["state"] == "ready");
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (model, node) in [("alpha", "node-a"), ("beta", "node-b"), ("gamma", "node-c")] {
        for _ in 0..8 {
            let (status, body) = post(
                &s,
                "/v1/chat/completions",
                json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["choices"][0]["message"]["content"], node, "{model}");
        }
    }
}
