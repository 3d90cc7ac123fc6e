//! Text completions: string, strings, token ids; JSON and SSE; echo.

use serde_json::{Value, json};

use crate::common::*;

/// Over HTTP, a greedy completion of every llama.cpp fixture prompt equals llama.cpp's text
/// (16 tokens: the default `max_tokens`).
#[tokio::test]
async fn string_prompts_match_llama_cpp_and_default_to_16_tokens() {
    let s = server();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/gemma-3-270m/greedy.json"
    );
    let fixtures: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let tokenizer = s
        .state
        .registry()
        .chat("gemma-3-270m", None)
        .await
        .unwrap()
        .engine
        .tokenizer()
        .clone();
    for case in fixtures["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let (status, body) = post(
            s,
            "/v1/completions",
            json!({"model": "gemma-3-270m", "prompt": prompt, "temperature": 0, "ignore_eos": true}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
        assert_eq!(body["object"], "text_completion");
        assert_eq!(body["choices"][0]["index"], 0);
        assert_eq!(body["usage"]["completion_tokens"], 16);
        assert_eq!(
            body["usage"]["prompt_tokens"],
            case["prompt_ids"].as_array().unwrap().len()
        );
        assert_eq!(body["choices"][0]["finish_reason"], "length");
        let name = case["name"].as_str().unwrap();
        let ids: Vec<u32> = case["completion_ids"].as_array().unwrap()[..16]
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let want = tokenizer.decode(&ids, true).unwrap();
        assert_eq!(body["choices"][0]["text"], want.as_str(), "case {name}");
    }
}

#[tokio::test]
async fn several_prompts_and_token_prompts_give_one_choice_each() {
    let s = server();
    let tok = s.state.registry().chat("gemma-3-270m", None).await.unwrap();
    let ids = tok
        .engine
        .tokenizer()
        .encode("The capital of France is", true)
        .unwrap();
    let (status, body) = post(
        s,
        "/v1/completions",
        json!({"model": "gemma-3-270m", "prompt": ["The capital of France is", "1, 2, 3,"], "max_tokens": 6, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!(
        (choices[0]["index"].as_u64(), choices[1]["index"].as_u64()),
        (Some(0), Some(1))
    );
    let (_, by_ids) = post(
        s,
        "/v1/completions",
        json!({"model": "gemma-3-270m", "prompt": ids, "max_tokens": 6, "temperature": 0}),
    )
    .await;
    assert_eq!(by_ids["choices"][0]["text"], choices[0]["text"], "{by_ids}");
    let (_, lists) = post(
        s,
        "/v1/completions",
        json!({"model": "gemma-3-270m", "prompt": [ids, [2, 1596]], "max_tokens": 2, "temperature": 0}),
    )
    .await;
    assert_eq!(lists["choices"].as_array().unwrap().len(), 2, "{lists}");
}

#[tokio::test]
async fn streamed_completion_and_echo() {
    let s = server();
    let req = json!({"model": "gemma-3-270m", "prompt": "Once upon a time", "max_tokens": 10, "temperature": 0, "ignore_eos": true});
    let (_, plain) = post(s, "/v1/completions", req.clone()).await;
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    sreq["stream_options"] = json!({"include_usage": true});
    let res = client()
        .post(format!("{}/v1/completions", s.base))
        .json(&sreq)
        .send()
        .await
        .unwrap();
    let data = sse_data(res).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| {
            c["choices"]
                .get(0)
                .and_then(|ch| ch["text"].as_str())
                .map(str::to_string)
        })
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    assert_eq!(text, plain["choices"][0]["text"].as_str().unwrap());
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 10);
    let mut ereq = req;
    ereq["echo"] = json!(true);
    let (_, echoed) = post(s, "/v1/completions", ereq).await;
    let t = echoed["choices"][0]["text"].as_str().unwrap();
    assert_eq!(
        t,
        format!(
            "Once upon a time{}",
            plain["choices"][0]["text"].as_str().unwrap()
        )
    );
}
