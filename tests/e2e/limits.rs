//! Per-key rate limits: 429 with `Retry-After` and OpenAI's `x-ratelimit-*` headers, token
//! reservations settled with the real usage, usage per key and model, limits shared by two
//! servers through the local Redis (127.0.0.1:6379, a key prefix of its own per test), and
//! local limits when Redis cannot be reached.

use serde_json::{Value, json};

use crate::auth_support::*;
use crate::common::{Server, assert_error, start_with};

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
        .to_string()
}

async fn usage(s: &Server, id: &str) -> Value {
    get(s, &format!("/admin/keys/{id}/usage"), Some(ADMIN))
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn requests_per_minute_answer_429_with_headers() {
    let dir = tempfile::tempdir().unwrap();
    let s = bare(dir.path());
    let key = create_key(&s, json!({"name": "rpm", "rpm": 2})).await;
    let secret = key["secret"].as_str().unwrap();
    fresh_window().await;
    let res = get(&s, "/v1/models", Some(secret)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-ratelimit-limit-requests"), "2");
    assert_eq!(header(&res, "x-ratelimit-remaining-requests"), "1");
    assert!(header(&res, "x-ratelimit-reset-requests").ends_with('s'));
    next_second().await;
    let res = get(&s, "/api/tags", Some(secret)).await;
    assert_eq!(header(&res, "x-ratelimit-remaining-requests"), "0");
    next_second().await;
    let res = get(&s, "/v1/models", Some(secret)).await;
    assert_eq!(res.status(), 429);
    let retry: u64 = header(&res, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(header(&res, "x-ratelimit-remaining-requests"), "0");
    let body: Value = res.json().await.unwrap();
    assert_error(&body, "requests", None, Some("rate_limit_exceeded"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per minute: limit 2"),
        "{body}"
    );
    let res = get(&s, "/api/tags", Some(secret)).await;
    assert_eq!(res.status(), 429);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].is_string(), "Ollama's shape: {body}");
    // Another key, and the admin token, are not limited by this one.
    let other = create_key(&s, json!({"name": "other"})).await;
    let res = get(&s, "/v1/models", other["secret"].as_str()).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("x-ratelimit-limit-requests").is_none());
    assert_eq!(get(&s, "/v1/models", Some(ADMIN)).await.status(), 200);
}

#[tokio::test]
async fn a_minutes_requests_cannot_all_come_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = bare(dir.path());
    // 60 a minute: one a second.
    let key = create_key(&s, json!({"name": "steady", "rpm": 60})).await;
    let secret = key["secret"].as_str().unwrap();
    fresh_window().await;
    next_second().await;
    let answers =
        futures::future::join_all((0..5).map(|_| get(&s, "/v1/models", Some(secret)))).await;
    let refused: Vec<_> = answers.iter().filter(|r| r.status() == 429).collect();
    let admitted = answers.iter().filter(|r| r.status() == 200).count();
    assert_eq!(admitted + refused.len(), answers.len());
    assert!(admitted >= 1 && !refused.is_empty(), "{admitted} admitted");
    for res in &refused {
        assert_eq!(header(res, "retry-after"), "1");
        assert_eq!(header(res, "x-ratelimit-limit-requests"), "60");
        let remaining: u64 = header(res, "x-ratelimit-remaining-requests")
            .parse()
            .unwrap();
        assert_eq!(remaining, 60 - admitted as u64);
    }
    let body: Value = answers
        .into_iter()
        .find(|r| r.status() == 429)
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_error(&body, "requests", None, Some("rate_limit_exceeded"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requests per second: limit 1"),
        "{body}"
    );
    // The next second admits again.
    next_second().await;
    assert_eq!(get(&s, "/v1/models", Some(secret)).await.status(), 200);
}

#[tokio::test]
async fn tokens_are_reserved_then_settled_and_counted_per_model() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_with(args(dir.path(), &["smollm2-135m-instruct"]));
    let key = create_key(&s, json!({"name": "tpm", "tpm": 400})).await;
    let (id, secret) = (key["id"].as_str().unwrap(), key["secret"].as_str().unwrap());
    fresh_window().await;
    // The prompt estimate plus max_tokens is over the limit: refused before it runs.
    let res = post(
        &s,
        "/v1/chat/completions",
        secret,
        tiny_chat("smollm2-135m-instruct", 500),
    )
    .await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "x-ratelimit-limit-tokens"), "400");
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens"),
        "{body}"
    );
    // 300 reserved, then settled with the real usage (far less).
    let res = post(
        &s,
        "/v1/chat/completions",
        secret,
        tiny_chat("smollm2-135m-instruct", 300),
    )
    .await;
    assert_eq!(res.status(), 200);
    let remaining: u64 = header(&res, "x-ratelimit-remaining-tokens")
        .parse()
        .unwrap();
    assert!(remaining < 100, "{remaining}");
    let body: Value = res.json().await.unwrap();
    let real = body["usage"]["total_tokens"].as_u64().unwrap();
    eventually("the answer is settled with its real usage", || async {
        usage(&s, id).await["window"]["tokens"].as_u64() == Some(real)
    })
    .await;
    let u = usage(&s, id).await;
    let m = &u["models"][0];
    assert_eq!(m["model"], "smollm2-135m-instruct");
    assert_eq!(m["requests"], 1);
    assert_eq!(m["total_tokens"].as_u64(), Some(real));
    // With the reservation given back, the same request fits again; streamed, it settles too.
    let mut streamed = tiny_chat("smollm2-135m-instruct", 300);
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let res = post(&s, "/v1/chat/completions", secret, streamed).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("[DONE]"));
    eventually("the streamed request is settled", || async {
        let u = usage(&s, id).await;
        u["models"][0]["requests"] == 2 && u["window"]["tokens"].as_u64().unwrap() < 2 * 100
    })
    .await;
}

fn redis_args(dir: &std::path::Path, url: &str, prefix: &str) -> nfai_router::config::ServeArgs {
    let mut a = args(dir, &[]);
    a.redis_url = Some(nfai_router::config::Secret::new(url.to_string()));
    a.common.config = Some({
        let p = dir.join(format!("redis-{prefix}.toml"));
        std::fs::write(&p, format!("[redis]\nkey_prefix = \"{prefix}\"\n")).unwrap();
        p
    });
    a
}

#[tokio::test]
async fn two_servers_share_limits_through_redis() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("nfai-test-{}-{}:", std::process::id(), rand_suffix());
    let url = "redis://127.0.0.1:6379";
    // One data directory: both replicas read the same keys.
    let a = start_with(redis_args(dir.path(), url, &prefix));
    let b = start_with(redis_args(dir.path(), url, &prefix));
    let key = create_key(&a, json!({"name": "shared", "rpm": 3})).await;
    let (id, secret) = (key["id"].as_str().unwrap(), key["secret"].as_str().unwrap());
    eventually("replica b loads the key", || async {
        get(&b, &format!("/admin/keys/{id}/usage"), Some(ADMIN))
            .await
            .status()
            == 200
    })
    .await;
    fresh_window().await;
    for _ in 0..3 {
        // One a second: 3 a minute is a share of one a second.
        next_second().await;
        assert_eq!(get(&a, "/v1/models", Some(secret)).await.status(), 200);
    }
    // Replica b learns a's three requests from Redis, then refuses the fourth.
    eventually("replica b sees three requests", || async {
        let u = usage(&b, id).await;
        u["window"]["requests"] == 3 && u["window"]["shared"] == true
    })
    .await;
    let res = get(&b, "/v1/models", Some(secret)).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
    // The counts are in Redis under the test's prefix.
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}rl:{id}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn without_redis_limits_are_local_and_requests_are_served() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let s = start_with(redis_args(
        dir.path(),
        "redis://127.0.0.1:1",
        "nfai-test-down:",
    ));
    let key = create_key(&s, json!({"name": "local", "rpm": 2})).await;
    let secret = key["secret"].as_str().unwrap();
    fresh_window().await;
    for expected in [200, 200, 429] {
        next_second().await;
        assert_eq!(get(&s, "/v1/models", Some(secret)).await.status(), expected);
    }
    eventually("the metric says Redis is down", || async {
        let text = get(&s, "/metrics", None).await.text().await.unwrap();
        text.contains("nfai_ratelimit_redis_up 0")
            && !text.contains("nfai_ratelimit_redis_failures_total 0\n")
    })
    .await;
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}
