//! Overload (429 with Retry-After), a model that is not loaded (503), and a client that
//! disconnects mid-stream, on a server with one batch slot and one queue slot.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use crate::common::*;

fn long_request() -> serde_json::Value {
    json!({
        "model": "smollm2-135m-instruct",
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "max_tokens": 2000, "temperature": 0, "ignore_eos": true, "stream": true
    })
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after_at_once() {
    let _guard = small_lock().await;
    let s = small_server();
    let url = format!("{}/v1/chat/completions", s.base);
    let running = client()
        .post(&url)
        .json(&long_request())
        .send()
        .await
        .unwrap();
    assert_eq!(running.status(), 200);
    let mut running = running.bytes_stream();
    running.next().await.unwrap().unwrap();
    let waiting = client().post(&url).json(&long_request()).send();
    let waiting = tokio::spawn(waiting);
    let engine = s
        .state
        .registry()
        .chat("smollm2-135m-instruct", None)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.engine.stats().waiting.load(Ordering::SeqCst) < 1 {
        assert!(Instant::now() < deadline, "second request never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let res = client()
        .post(&url)
        .json(&greedy_chat("hi", 2))
        .send()
        .await
        .unwrap();
    // The answer did not wait for room: the queued request is still queued behind the running
    // one (2,000 tokens), so the 429 came while the queue was full.
    assert_eq!(res.status(), 429);
    assert_eq!(
        engine.engine.stats().waiting.load(Ordering::SeqCst),
        1,
        "the 429 waited for the queue to move"
    );
    assert_eq!(res.headers()["retry-after"], "1");
    assert_error(
        &res.json().await.unwrap(),
        "rate_limit_error",
        None,
        Some("queue_full"),
    );
    drop(running);
    waiting.abort();
}

#[tokio::test]
async fn a_model_that_is_not_loaded_is_503() {
    let s = small_server();
    let (status, body) = post(
        s,
        "/v1/embeddings",
        json!({"model": "all-minilm-l6-v2", "input": "x"}),
    )
    .await;
    assert_eq!(status, 503);
    assert_error(&body, "server_error", None, Some("model_unavailable"));
}

#[tokio::test]
async fn a_disconnected_stream_frees_its_sequence() {
    let _guard = small_lock().await;
    let s = small_server();
    let engine = s
        .state
        .registry()
        .chat("smollm2-135m-instruct", None)
        .await
        .unwrap();
    let stats = engine.engine.stats();
    // Wait for earlier tests' sequences to leave.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.active.load(Ordering::SeqCst) > 0 || stats.waiting.load(Ordering::SeqCst) > 0 {
        assert!(Instant::now() < deadline, "engine never went idle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled_before = stats.cancelled.load(Ordering::SeqCst);
    let res = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&long_request())
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    for _ in 0..3 {
        body.next().await.unwrap().unwrap();
    }
    assert_eq!(stats.active.load(Ordering::SeqCst), 1);
    let steps_at_drop = stats.steps.load(Ordering::SeqCst);
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.cancelled.load(Ordering::SeqCst) == cancelled_before {
        assert!(Instant::now() < deadline, "the sequence was never dropped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let steps = stats.steps.load(Ordering::SeqCst) - steps_at_drop;
    println!("sequence dropped {steps} steps after the client disconnected");
    // The server learns of the disconnect when it writes the next chunk (one step), and the
    // scheduler drops the sequence before the step after that.
    assert!(
        steps <= 3,
        "sequence ran {steps} steps after the disconnect"
    );
    assert_eq!(stats.active.load(Ordering::SeqCst), 0);
}
