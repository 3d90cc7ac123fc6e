//! Model listing and lookup, health and readiness.

use serde_json::Value;

use crate::common::*;

async fn get(path: &str) -> (u16, Value) {
    let res = client()
        .get(format!("{}{path}", server().base))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn list_and_get_models() {
    let (status, list) = get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"gemma-3-270m") && ids.contains(&"all-minilm-l6-v2"),
        "{list}"
    );
    for m in list["data"].as_array().unwrap() {
        assert_eq!(m["object"], "model");
        assert_eq!(m["owned_by"], "nfai");
        assert!(m["created"].as_u64().is_some());
        assert_eq!(m["state"], "ready");
    }
    let (status, one) = get("/v1/models/gemma-3-270m").await;
    assert_eq!((status, one["id"].as_str()), (200, Some("gemma-3-270m")));
    let (status, alias) = get("/v1/models/sentence-transformers/all-MiniLM-L6-v2").await;
    assert_eq!(
        (status, alias["id"].as_str()),
        (200, Some("all-minilm-l6-v2")),
        "{alias}"
    );
    let (status, missing) = get("/v1/models/gpt-4o").await;
    assert_eq!(status, 404);
    assert_error(
        &missing,
        "invalid_request_error",
        Some("model"),
        Some("model_not_found"),
    );
}

#[tokio::test]
async fn health_and_ready() {
    let (status, body) = get("/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = get("/ready").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
}
