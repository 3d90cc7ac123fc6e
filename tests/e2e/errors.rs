//! Every error a client can cause: status, OpenAI error shape, `param` and `code`.

use serde_json::json;

use crate::common::*;

async fn raw(path: &str, body: &'static str) -> (u16, serde_json::Value) {
    let res = client()
        .post(format!("{}{path}", server().base))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn malformed_json_is_400() {
    let (status, body) = raw("/v1/chat/completions", "{\"model\": \"gemma-3-270m\", ").await;
    assert_eq!(status, 400);
    assert_error(&body, "invalid_request_error", None, Some("invalid_json"));
    let (status, body) = raw("/v1/embeddings", "").await;
    assert_eq!(status, 400);
    assert_error(&body, "invalid_request_error", None, Some("invalid_json"));
}

#[tokio::test]
async fn missing_and_mistyped_fields_are_named() {
    let (status, body) = raw("/v1/chat/completions", r#"{"messages": []}"#).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        Some("model"),
        Some("invalid_json"),
    );
    let (status, body) = raw(
        "/v1/chat/completions",
        r#"{"model":"gemma-3-270m","messages":[{"role":"user","content":5}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        Some("messages[0].content"),
        Some("invalid_json"),
    );
    let (status, body) = raw(
        "/v1/chat/completions",
        r#"{"model":"gemma-3-270m","messages":[]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        Some("messages"),
        Some("invalid_value"),
    );
    let (status, body) = raw(
        "/v1/chat/completions",
        r#"{"model":"gemma-3-270m","messages":[{"role":"wizard","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        Some("messages[0].role"),
        Some("invalid_value"),
    );
}

#[tokio::test]
async fn unknown_model_is_404() {
    for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] {
        let body = json!({"model": "no-such-model", "messages": [{"role":"user","content":"x"}], "prompt": "x", "input": "x"});
        let (status, body) = post(server(), path, body).await;
        assert_eq!(status, 404, "{path}");
        assert_error(
            &body,
            "invalid_request_error",
            Some("model"),
            Some("model_not_found"),
        );
    }
}

#[tokio::test]
async fn out_of_range_parameters_are_400_naming_them() {
    let cases = [
        (json!({"temperature": 2.5}), "temperature", "invalid_value"),
        (json!({"top_p": 0}), "top_p", "invalid_value"),
        (json!({"top_k": -1}), "top_k", "invalid_value"),
        (
            json!({"presence_penalty": 3}),
            "presence_penalty",
            "invalid_value",
        ),
        (
            json!({"frequency_penalty": -3}),
            "frequency_penalty",
            "invalid_value",
        ),
        (json!({"max_tokens": 0}), "max_tokens", "invalid_value"),
        (
            json!({"max_completion_tokens": -5}),
            "max_completion_tokens",
            "invalid_value",
        ),
        (json!({"n": 3}), "n", "unsupported_parameter"),
        (
            json!({"stop": ["a", "b", "c", "d", "e"]}),
            "stop",
            "invalid_value",
        ),
        (
            json!({"logprobs": true}),
            "logprobs",
            "unsupported_parameter",
        ),
        (
            json!({"functions": [{"name": "f"}]}),
            "functions",
            "unsupported_parameter",
        ),
        (
            json!({"response_format": {"type": "yaml"}}),
            "response_format.type",
            "invalid_value",
        ),
    ];
    for (extra, param, code) in cases {
        let mut body = greedy_chat("hi", 4);
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, resp) = post(server(), "/v1/chat/completions", body).await;
        assert_eq!(status, 400, "{param}: {resp}");
        assert_error(&resp, "invalid_request_error", Some(param), Some(code));
    }
    let (status, resp) = post(
        server(),
        "/v1/completions",
        json!({"model":"gemma-3-270m","prompt":[999_999_999]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(
        &resp,
        "invalid_request_error",
        Some("prompt"),
        Some("invalid_value"),
    );
    let (status, resp) = post(
        server(),
        "/v1/embeddings",
        json!({"model":"all-minilm-l6-v2","input":[]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(
        &resp,
        "invalid_request_error",
        Some("input"),
        Some("invalid_value"),
    );
    let (status, resp) = post(
        server(),
        "/v1/embeddings",
        json!({"model":"all-minilm-l6-v2","input":""}),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(
        &resp,
        "invalid_request_error",
        Some("input"),
        Some("invalid_value"),
    );
    let (status, resp) = post(
        server(),
        "/v1/embeddings",
        json!({"model":"all-minilm-l6-v2","input":"x","encoding_format":"hex"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(
        &resp,
        "invalid_request_error",
        Some("encoding_format"),
        Some("invalid_value"),
    );
}

#[tokio::test]
async fn wrong_model_kind_is_400() {
    let (status, body) = post(
        server(),
        "/v1/embeddings",
        json!({"model":"gemma-3-270m","input":"x"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        Some("model"),
        Some("model_not_supported"),
    );
    let (status, body) = post(
        server(),
        "/v1/chat/completions",
        json!({"model":"all-minilm-l6-v2","messages":[{"role":"user","content":"x"}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        Some("model"),
        Some("model_not_supported"),
    );
}

#[tokio::test]
async fn prompts_over_the_context_are_400() {
    let long = "customer ".repeat(5000);
    let (status, body) = post(server(), "/v1/chat/completions", greedy_chat(&long, 4)).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        Some("messages"),
        Some("context_length_exceeded"),
    );
    let (status, body) = post(
        server(),
        "/v1/completions",
        json!({"model":"gemma-3-270m","prompt":long}),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        Some("prompt"),
        Some("context_length_exceeded"),
    );
    let (status, body) = post(server(), "/v1/chat/completions", greedy_chat("hi", 100_000)).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        Some("max_tokens"),
        Some("context_length_exceeded"),
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let big = "x".repeat(3 * 1024 * 1024);
    let (status, body) = post(
        server(),
        "/v1/embeddings",
        json!({"model":"all-minilm-l6-v2","input": big}),
    )
    .await;
    assert_eq!(status, 413);
    assert_error(
        &body,
        "invalid_request_error",
        None,
        Some("request_too_large"),
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_shape() {
    let res = client()
        .get(format!("{}/v1/nothing", server().base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_error(
        &res.json().await.unwrap(),
        "invalid_request_error",
        None,
        Some("unknown_url"),
    );
    let res = client()
        .get(format!("{}/v1/chat/completions", server().base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_error(
        &res.json().await.unwrap(),
        "invalid_request_error",
        None,
        Some("method_not_allowed"),
    );
}

#[test]
fn engine_failures_map_to_500_and_503() {
    use nfai_inference::{EngineError, SubmitError};
    use nfai_router::error::ApiError;
    let e = ApiError::from(EngineError::Compute("boom".into()));
    assert_eq!(
        (e.status.as_u16(), e.kind, e.code),
        (500, "server_error", Some("internal_error"))
    );
    let e = ApiError::from(SubmitError::Stopped);
    assert_eq!(
        (e.status.as_u16(), e.kind, e.code),
        (503, "server_error", Some("model_unavailable"))
    );
    let e = ApiError::from(SubmitError::QueueFull { capacity: 1 });
    assert_eq!((e.status.as_u16(), e.retry_after_secs), (429, Some(1)));
}
