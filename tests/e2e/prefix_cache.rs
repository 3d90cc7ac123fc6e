//! The prefix cache through the HTTP API: a repeated long system prompt is served from cached
//! keys and values, reported in `usage.prompt_tokens_details.cached_tokens`, without changing
//! the greedy answer.

use serde_json::{Value, json};

use crate::common::{post, server};

fn crm_chat(system: &str, user: &str) -> Value {
    json!({
        "model": "smollm2-135m-instruct",
        "messages": [
            { "role": "system", "content": system },
            { "role": "user", "content": user }
        ],
        "max_tokens": 12,
        "temperature": 0
    })
}

fn cached(body: &Value) -> u64 {
    body["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or_else(|| panic!("no cached_tokens: {body}"))
}

#[tokio::test]
async fn a_repeated_system_prompt_is_served_from_the_prefix_cache() {
    let s = server();
    // A unique first line keeps other tests' requests from sharing this prefix.
    let marker = format!("Ticket desk {}.", std::process::id());
    let system = format!(
        "{marker} You are the assistant of NextFlow CRM. Answer customers politely and briefly. \
         Orders ship within two business days from the Hanoi warehouse; delivery takes three to \
         five days. Refunds are issued within seven days of a return being received. Never \
         promise a delivery date the carrier has not confirmed. Sign every reply as NextFlow \
         Support."
    );
    let user = "When will order #4521 arrive?";
    let (status, first) = post(s, "/v1/chat/completions", crm_chat(&system, user)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(cached(&first), 0, "nothing cached yet: {first}");

    let (status, second) = post(s, "/v1/chat/completions", crm_chat(&system, user)).await;
    assert_eq!(status, 200, "{second}");
    let prompt = second["usage"]["prompt_tokens"].as_u64().unwrap();
    // Everything but the last prompt token, whose logits choose the first new token.
    assert_eq!(cached(&second), prompt - 1, "{second}");
    // The answer is not compared token for token with the first: the last prompt token now
    // runs through the one-token decode kernels instead of the prefill's, whose rounding
    // differs slightly (the scheduler test checks that reuse itself changes nothing).
    assert!(
        second["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|t| !t.trim().is_empty()),
        "{second}"
    );

    // Another question under the same system prompt reuses the system prompt.
    let (status, other) = post(
        s,
        "/v1/chat/completions",
        crm_chat(&system, "Can I return a damaged phone?"),
    )
    .await;
    assert_eq!(status, 200, "{other}");
    assert!(cached(&other) >= 60, "{other}");
    assert!(cached(&other) < other["usage"]["prompt_tokens"].as_u64().unwrap());

    let metrics = crate::common::client()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let hits: f64 = metrics
        .lines()
        .find(|l| l.starts_with("nfai_prefix_cache_hits_total{model=\"smollm2-135m-instruct\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no prefix cache hits in /metrics:\n{metrics}"));
    assert!(hits >= 2.0, "{hits}");
}
