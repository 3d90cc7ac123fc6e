//! Chat completions, plain and streamed.

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn plain_chat_has_openai_shape() {
    let s = server();
    let (status, body) = post(s, "/v1/chat/completions", greedy_chat("Name a colour.", 12)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(body["model"], "smollm2-135m-instruct");
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["content"].is_string());
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    let u = &body["usage"];
    assert!(u["prompt_tokens"].as_u64().unwrap() > 5);
    assert!(u["completion_tokens"].as_u64().unwrap() <= 12);
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn greedy_is_deterministic_and_aliases_resolve() {
    let s = server();
    let mut req = greedy_chat("Write a short greeting for a customer.", 16);
    let (_, a) = post(s, "/v1/chat/completions", req.clone()).await;
    req["model"] = json!("smollm2");
    let (status, b) = post(s, "/v1/chat/completions", req).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        a["choices"][0]["message"]["content"],
        b["choices"][0]["message"]["content"]
    );
    assert_eq!(b["model"], "smollm2-135m-instruct");
}

#[tokio::test]
async fn streamed_chat_matches_plain_and_ends_with_usage_and_done() {
    let s = server();
    let req = greedy_chat("List three fruits.", 20);
    let (_, plain) = post(s, "/v1/chat/completions", req.clone()).await;
    let mut sreq = req;
    sreq["stream"] = json!(true);
    sreq["stream_options"] = json!({ "include_usage": true });
    let res = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&sreq)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let data = sse_data(res).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let id = chunks[0]["id"].clone();
    let mut text = String::new();
    let mut finish = None;
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id);
        if let Some(choice) = c["choices"].get(0) {
            if let Some(t) = choice["delta"]["content"].as_str() {
                text.push_str(t);
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
    }
    assert_eq!(
        text,
        plain["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(
        finish.as_deref(),
        plain["choices"][0]["finish_reason"].as_str()
    );
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    // The same counts; how much of the prompt came from the prefix cache may differ.
    let counts = |u: &Value| {
        (
            u["prompt_tokens"].clone(),
            u["completion_tokens"].clone(),
            u["total_tokens"].clone(),
        )
    };
    assert_eq!(counts(&usage_chunk["usage"]), counts(&plain["usage"]));
    assert!(usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"].is_u64());
    // Without include_usage there is no usage chunk and no usage key.
    let res = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&json!({"model":"smollm2-135m-instruct","messages":[{"role":"user","content":"Hi"}],"max_tokens":3,"stream":true}))
        .send()
        .await
        .unwrap();
    let data = sse_data(res).await;
    assert!(data.iter().all(|d| !d.contains("\"usage\"")), "{data:?}");
}

#[tokio::test]
async fn stop_strings_cut_the_text_and_are_not_returned() {
    let s = server();
    let req = greedy_chat("Count from one to ten in words, separated by commas.", 40);
    let (_, full) = post(s, "/v1/chat/completions", req.clone()).await;
    let text = full["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.chars().count() > 8, "need some text to cut: {text:?}");
    // A stop string from the middle of the greedy output.
    let cut: String = text.chars().skip(4).take(3).collect();
    let mut sreq = req;
    sreq["stop"] = json!([cut]);
    let (status, body) = post(s, "/v1/chat/completions", sreq).await;
    assert_eq!(status, 200, "{body}");
    let got = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(got, &text[..text.find(&cut).unwrap()]);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn system_and_multi_turn_conversations_render() {
    let s = server();
    let body = json!({
        "model": "smollm2-135m-instruct",
        "messages": [
            {"role": "system", "content": "You are a CRM assistant."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "Summarise: the customer paid."}
        ],
        "max_completion_tokens": 8,
        "temperature": 0.7, "top_p": 0.9, "seed": 42
    });
    let (status, a) = post(s, "/v1/chat/completions", body.clone()).await;
    assert_eq!(status, 200, "{a}");
    let (_, b) = post(s, "/v1/chat/completions", body).await;
    assert_eq!(
        a["choices"][0]["message"], b["choices"][0]["message"],
        "same seed, same text"
    );
    assert!(a["usage"]["completion_tokens"].as_u64().unwrap() <= 8);
}

/// `x-request-timeout` bounds a native generation: a plain request past it is a 504 naming the
/// deadline; a stream that has started ends with an error event, never with `[DONE]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_deadline_bounds_a_native_generation() {
    let s = server();
    let (status, _) = post(s, "/v1/chat/completions", greedy_chat("Hi", 1)).await;
    assert_eq!(status, 200, "warm-up");
    let mut long = greedy_chat("Count from one to five hundred.", 1000);
    long["ignore_eos"] = json!(true);
    let url = format!("{}/v1/chat/completions", s.base);

    let started = std::time::Instant::now();
    let res = client()
        .post(&url)
        .header("x-request-timeout", "0.5")
        .json(&long)
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(res.status().as_u16(), 504);
    let body: Value = res.json().await.unwrap();
    assert_error(&body, "server_error", None, Some("deadline_exceeded"));
    assert!(elapsed.as_secs_f64() < 5.0, "{elapsed:?}");

    long["stream"] = json!(true);
    let res = client()
        .post(&url)
        .header("x-request-timeout", "1.5")
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let data = sse_data(res).await;
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{last}"
    );
    assert!(data.len() > 2, "tokens came before the deadline: {data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
}

/// A bad `x-request-timeout` is the client's error: a 400 naming the header, in OpenAI's error
/// shape on the OpenAI routes and in Ollama's on Ollama's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_timeout_header_is_a_400_naming_it() {
    for (path, body) in [
        ("/v1/chat/completions", greedy_chat("Hi", 1)),
        (
            "/api/chat",
            json!({"model": "smollm2-135m-instruct", "messages": []}),
        ),
    ] {
        for bad in ["abc", "0", "-1", "inf", "NaN", ""] {
            let res = client()
                .post(format!("{}{path}", server().base))
                .header("x-request-timeout", bad)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 400, "{path} {bad:?}");
            let body: Value = res.json().await.unwrap();
            if path.starts_with("/api/") {
                let msg = body["error"].as_str().unwrap_or_default();
                assert!(msg.contains("x-request-timeout"), "{body}");
            } else {
                assert_error(
                    &body,
                    "invalid_request_error",
                    Some("x-request-timeout"),
                    Some("invalid_value"),
                );
            }
        }
    }
}

/// The default model's catalog entry samples against loops: greedily, the README's reply draft
/// ends by itself with the default repetition penalty, and without it (`repetition_penalty: 1`)
/// the same request repeats contact-field placeholders until its cap. A server of its own, so
/// that no other test's sequence shares its batch.
#[tokio::test]
async fn the_default_repetition_penalty_lets_a_greedy_draft_end() {
    let own = start_with(config_args("repetition", ""));
    let s = &own;
    let req = |extra: Value| {
        let mut r = json!({
            "model": "default",
            "messages": [
                {"role": "system", "content": "You are a CRM assistant."},
                {"role": "user", "content": "Draft a short, polite reply to a customer asking when their order #4521 will be delivered."}
            ],
            "temperature": 0,
        });
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        r
    };
    let (status, body) = post(s, "/v1/chat/completions", req(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
    assert!(
        body["usage"]["completion_tokens"].as_u64().unwrap() < 160,
        "{body}"
    );
    let (status, off) = post(
        s,
        "/v1/chat/completions",
        req(json!({"repetition_penalty": 1, "max_tokens": 160})),
    )
    .await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["choices"][0]["finish_reason"], "length", "{off}");
    // A window of -1 is the whole sequence; below it the field is named.
    let (status, err) = post(s, "/v1/chat/completions", req(json!({"repeat_last_n": -2}))).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "repeat_last_n", "{err}");
}
