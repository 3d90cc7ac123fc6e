//! `/metrics`: request, token, latency and engine families after real requests, accepted by
//! `promtool check metrics`; a client that disconnects mid-stream shows as a cancelled sequence
//! and a request that did not complete.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use crate::common::*;

/// The value of the series written exactly as `series` (`name{labels}`), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(s: &Server) -> String {
    let res = client()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    res.text().await.unwrap()
}

/// Runs `promtool check metrics` on `text` (installed by scripts/test.sh; installed here with
/// apt when missing).
fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    if Command::new("promtool").arg("--version").output().is_err() {
        let ok = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "prometheus"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "promtool is missing and apt-get could not install it");
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn requests_tokens_and_latencies_are_counted_and_promtool_accepts_them() {
    let s = server();
    let model = "smollm2-135m-instruct";
    let before = scrape(s).await;
    let route = "route=\"/v1/chat/completions\",model=\"smollm2-135m-instruct\"";
    let count = |text: &str, series: &str| value(text, series).unwrap_or(0.0);
    let ok_series = format!("nfai_requests_total{{{route},status=\"200\"}}");

    let res = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .header("x-request-id", "metrics-test-1")
        .json(&greedy_chat("Say hello.", 6))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-request-id"], "metrics-test-1");
    let body: serde_json::Value = res.json().await.unwrap();
    let completion = body["usage"]["completion_tokens"].as_f64().unwrap();
    let prompt = body["usage"]["prompt_tokens"].as_f64().unwrap();

    let mut stream_req = greedy_chat("Count to five.", 6);
    stream_req["stream"] = json!(true);
    let res = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&stream_req)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let made_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(made_id.len(), 16, "a request id is made when none is sent");
    let events = sse_data(res).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    let (status, _) = post(s, "/v1/chat/completions", json!({"model": model})).await;
    assert_eq!(status, 400);

    let after = scrape(s).await;
    assert_eq!(count(&after, &ok_series) - count(&before, &ok_series), 2.0);
    // The request names no messages: it is refused before its model is resolved.
    let bad = "nfai_requests_total{route=\"/v1/chat/completions\",model=\"\",status=\"400\"}";
    assert!(count(&after, bad) - count(&before, bad) >= 1.0, "{after}");
    for family in [
        "nfai_time_to_first_token_seconds",
        "nfai_request_duration_seconds",
    ] {
        let series = format!("{family}_count{{{route}}}");
        assert!(
            count(&after, &series) - count(&before, &series) >= 2.0,
            "{series}\n{after}"
        );
    }
    let itl = format!("nfai_inter_token_latency_seconds_count{{{route}}}");
    assert!(count(&after, &itl) > count(&before, &itl), "{after}");
    let tokens = format!("nfai_completion_tokens_total{{{route}}}");
    assert!(count(&after, &tokens) - count(&before, &tokens) >= completion + 1.0);
    let prompts = format!("nfai_prompt_tokens_total{{{route}}}");
    assert!(count(&after, &prompts) - count(&before, &prompts) >= prompt);
    // Buckets around the latency targets.
    assert!(after.contains(&format!(
        "nfai_time_to_first_token_seconds_bucket{{{route},le=\"0.5\"}}"
    )));
    for series in [
        "nfai_engine_running_sequences{model=\"smollm2-135m-instruct\"}",
        "nfai_engine_waiting_sequences{model=\"smollm2-135m-instruct\"}",
        "nfai_engine_batch_size_count{model=\"smollm2-135m-instruct\"}",
        "nfai_engine_queue_wait_seconds_count{model=\"smollm2-135m-instruct\"}",
    ] {
        assert!(value(&after, series).is_some(), "{series}\n{after}");
    }
    assert!(
        count(
            &after,
            "nfai_engine_batch_size_count{model=\"smollm2-135m-instruct\"}"
        ) >= 1.0
    );

    let (status, _) = post(
        s,
        "/v1/embeddings",
        json!({"model": "all-minilm-l6-v2", "input": ["one two three"]}),
    )
    .await;
    assert_eq!(status, 200);
    let after = scrape(s).await;
    assert!(
        count(
            &after,
            "nfai_prompt_tokens_total{route=\"/v1/embeddings\",model=\"all-minilm-l6-v2\"}"
        ) >= 3.0,
        "{after}"
    );
    promtool_check(&after);
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_frees_its_sequence_in_the_metrics() {
    let _guard = small_lock().await;
    let s = small_server();
    let running = "nfai_engine_running_sequences{model=\"smollm2-135m-instruct\"}";
    let cancelled = "nfai_engine_cancelled_sequences_total{model=\"smollm2-135m-instruct\"}";
    let ok = "nfai_requests_total{route=\"/v1/chat/completions\",model=\"smollm2-135m-instruct\",status=\"200\"}";
    // Wait for earlier tests' sequences to leave.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(s).await;
        if value(&text, running).unwrap_or(0.0) == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "engine never went idle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = scrape(s).await;
    let res = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&json!({
            "model": "smollm2-135m-instruct",
            "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": 2000, "temperature": 0, "ignore_eos": true, "stream": true
        }))
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    for _ in 0..3 {
        body.next().await.unwrap().unwrap();
    }
    assert_eq!(value(&scrape(s).await, running), Some(1.0));
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let text = scrape(s).await;
        let freed = value(&text, running) == Some(0.0)
            && value(&text, cancelled).unwrap_or(0.0) > value(&before, cancelled).unwrap_or(0.0)
            && value(&text, ok).unwrap_or(0.0) > value(&before, ok).unwrap_or(0.0);
        if freed {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the metrics never showed the sequence freed:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    promtool_check(&after);
}
