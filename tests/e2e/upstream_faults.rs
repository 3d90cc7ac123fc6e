//! Fallback, retries, cooldown and deadlines against misbehaving upstreams: servers on port 0
//! that refuse connections, never answer, answer 500 or 429, or cut a stream after N tokens.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Server, client, post, sse_data};
use crate::upstream_support::*;

fn chat(model: &str, stream: bool) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }], "stream": stream })
}

/// A routed nfai: `upstreams` as `(name, node URLs, extra TOML keys)`, route `m` → `targets`.
fn routed(
    name: &str,
    upstreams: &[(&str, Vec<String>, &str)],
    targets: &[&str],
    routing: &str,
) -> Server {
    let mut toml = format!("serve = []\n[routing]\n{routing}\n");
    for (up, nodes, extra) in upstreams {
        toml.push_str(&format!(
            "[[upstreams]]\nname = \"{up}\"\nnodes = {nodes:?}\n{extra}\n"
        ));
    }
    toml.push_str(&format!(
        "[[routes]]\nmodel = \"m\"\ntargets = {targets:?}\n"
    ));
    start_with_config(name, &toml)
}

async fn content(server: &Server) -> (u16, Value) {
    post(server, "/v1/chat/completions", chat("m", false)).await
}

/// A streamed chat of route `m`: asserts 200 and returns the SSE `data:` payloads.
async fn streamed(server: &Server) -> Vec<String> {
    let res = client()
        .post(format!("{}/v1/chat/completions", server.base))
        .json(&chat("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    sse_data(res).await
}

const HELLO: &[&str] = &["Hel", "lo"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_falls_back_to_the_next_target() {
    let good = serve(openai_tokens(HELLO, None)).await;
    let s = routed(
        "refused",
        &[
            ("a", vec![refused_url().await], ""),
            ("b", vec![good.base.clone()], ""),
        ],
        &["openai:a/m", "openai:b/m"],
        "",
    );
    let (status, body) = content(&s).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello");
    assert_eq!(body["usage"]["completion_tokens"], 2);
    assert_eq!(good.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_killed_mid_test_is_skipped() {
    let first = serve(openai_tokens(&["first"], None)).await;
    let second = serve(openai_tokens(&["second"], None)).await;
    let s = routed(
        "killed",
        &[
            ("a", vec![first.base.clone()], ""),
            ("b", vec![second.base.clone()], ""),
        ],
        &["openai:a/m", "openai:b/m"],
        "",
    );
    assert_eq!(
        content(&s).await.1["choices"][0]["message"]["content"],
        "first"
    );
    first.kill().await;
    for _ in 0..3 {
        let (status, body) = content(&s).await;
        assert_eq!(
            (status, body["choices"][0]["message"]["content"].as_str()),
            (200, Some("second")),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_fall_back_and_cool_the_node_down() {
    let bad = serve(failing(500)).await;
    let good = serve(openai_tokens(HELLO, None)).await;
    let s = routed(
        "cooldown",
        &[
            ("a", vec![bad.base.clone()], ""),
            ("b", vec![good.base.clone()], ""),
        ],
        &["openai:a/m", "openai:b/m"],
        "cooldown_ms = 2000",
    );
    for _ in 0..3 {
        assert_eq!(content(&s).await.0, 200);
    }
    assert_eq!(bad.hits(), 3);
    // Three failures in the window: the node is skipped while it cools down.
    assert_eq!(content(&s).await.0, 200);
    assert_eq!(bad.hits(), 3);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(content(&s).await.0, 200);
    assert_eq!(bad.hits(), 4, "after the cooldown the node is tried again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_limit_bounds_attempts() {
    let nodes: Vec<Fake> = futures::future::join_all((0..4).map(|_| serve(failing(500)))).await;
    let s = routed(
        "retries",
        &[("a", nodes.iter().map(|n| n.base.clone()).collect(), "")],
        &["openai:a/m"],
        "",
    );
    let (status, body) = content(&s).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["type"], "server_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream a"),
        "{body}"
    );
    assert_eq!(
        nodes.iter().map(Fake::hits).sum::<usize>(),
        3,
        "one attempt and two retries"
    );

    let busy = serve(failing(429)).await;
    let s = routed(
        "busy",
        &[("a", vec![busy.base.clone()], "")],
        &["openai:a/m"],
        "retries = 0",
    );
    let (status, _) = content(&s).await;
    assert_eq!((status, busy.hits()), (429, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_ends_at_the_deadline() {
    let h1 = serve(hang()).await;
    let h2 = serve(hang()).await;
    let s = routed(
        "deadline",
        &[
            ("a", vec![h1.base.clone()], ""),
            ("b", vec![h2.base.clone()], ""),
        ],
        &["openai:a/m", "openai:b/m"],
        "request_timeout_secs = 30",
    );
    let started = Instant::now();
    let res = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .header("x-request-timeout", "1")
        .json(&chat("m", true))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(res.status().as_u16(), 504);
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");

    // The config default applies without the header.
    let s = routed(
        "deadline2",
        &[("a", vec![h1.base.clone()], "")],
        &["openai:a/m"],
        "request_timeout_secs = 0.5",
    );
    let started = Instant::now();
    assert_eq!(content(&s).await.0, 504);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// Route `m` → an upstream that never answers (with `extra` settings), then a good one.
async fn silent_then_good(name: &str, extra: &str) -> (Fake, Fake, Server) {
    let h = serve(hang()).await;
    let good = serve(openai_tokens(HELLO, None)).await;
    let s = routed(
        name,
        &[
            ("a", vec![h.base.clone()], extra),
            ("b", vec![good.base.clone()], ""),
        ],
        &["openai:a/m", "openai:b/m"],
        "",
    );
    (h, good, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_byte_timeout_moves_on() {
    let (_h, _good, s) = silent_then_good("firstbyte", "first_byte_timeout_ms = 300").await;
    let started = Instant::now();
    let data = streamed(&s).await;
    assert!(data.iter().any(|d| d.contains("\"Hel\"")), "{data:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A whole answer comes only when its generation is done, so the first-byte timeout does not cut
/// it short; the total timeout bounds it, and then the next target answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_is_bounded_by_the_total_timeout() {
    let (h, good, s) = silent_then_good(
        "whole",
        "first_byte_timeout_ms = 100\ntotal_timeout_ms = 800",
    )
    .await;
    let started = Instant::now();
    let (status, body) = content(&s).await;
    let elapsed = started.elapsed();
    assert_eq!(
        (status, body["choices"][0]["message"]["content"].as_str()),
        (200, Some("Hello")),
        "{body}"
    );
    assert!(
        elapsed >= Duration::from_millis(750) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    assert_eq!((h.hits(), good.hits()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_broken_before_its_first_token_falls_back() {
    let broken = serve(openai_tokens(HELLO, Some(0))).await;
    let good = serve(openai_tokens(&["fine"], None)).await;
    let s = routed(
        "early-break",
        &[
            ("a", vec![broken.base.clone()], ""),
            ("b", vec![good.base.clone()], ""),
        ],
        &["openai:a/m", "openai:b/m"],
        "",
    );
    let data = streamed(&s).await;
    assert!(data.iter().any(|d| d.contains("\"fine\"")), "{data:?}");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(broken.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_broken_after_tokens_ends_with_an_error_event() {
    let broken = serve(openai_tokens(&["a", "b", "c", "d"], Some(2))).await;
    let good = serve(openai_tokens(HELLO, None)).await;
    let s = routed(
        "late-break",
        &[
            ("a", vec![broken.base.clone()], ""),
            ("b", vec![good.base.clone()], ""),
        ],
        &["openai:a/m", "openai:b/m"],
        "",
    );
    let data = streamed(&s).await;
    let tokens: Vec<String> = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(tokens, ["a", "b"], "{data:?}");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stream broke"),
        "{last}"
    );
    assert!(
        !data.iter().any(|d| d == "[DONE]"),
        "no silent end: {data:?}"
    );
    assert_eq!(
        good.hits(),
        0,
        "tokens already reached the client: no retry"
    );

    // A client that does not stream gets a whole answer: nothing reached it from the broken
    // upstream, so the next target answers.
    let (status, body) = content(&s).await;
    assert_eq!(
        (status, body["choices"][0]["message"]["content"].as_str()),
        (200, Some("Hello")),
        "{body}"
    );
    assert_eq!((broken.hits(), good.hits()), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_route_tables_are_refused_at_start() {
    let e = config_error(
        "bad1",
        "[[routes]]\nmodel = \"x\"\ntargets = [\"ollama:nowhere/llama3\"]\n",
    );
    assert!(e.contains("nowhere") && e.contains("not defined"), "{e}");
    let e = config_error(
        "bad2",
        "[[upstreams]]\nname = \"u\"\nnodes = [\"not a url\"]\n",
    );
    assert!(e.contains("not a url"), "{e}");
    let e = config_error(
        "bad3",
        "[[upstreams]]\nname = \"u\"\nnodes = [\"http://h:1\"]\n[[routes]]\nmodel = \"x\"\ntargets = [\"grpc:u/m\"]\n",
    );
    assert!(e.contains("grpc"), "{e}");
    let e = config_error(
        "bad4",
        "[[routes]]\nmodel = \"x\"\ntargets = [\"native:nope\"]\n",
    );
    assert!(e.contains("nope"), "{e}");
    let e = config_error(
        "bad5",
        "[[upstreams]]\nname = \"u\"\nnodes = [\"http://h:1\"]\nbalance = \"random\"\n",
    );
    assert!(e.contains("random") && e.contains("round_robin"), "{e}");
}
