//! The model cache with the real default models: admin API, single-flight cold loads, unload
//! returning memory, keep-alive, eviction under a RAM budget, readiness and metrics.
//!
//! A test binary of its own (its own process), so that the RSS it measures is not disturbed by
//! other tests; the tests here run one at a time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed test, reported where it happens"
)]

use nfai_tests::common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nfai_router::config::ServeArgs;
use serde_json::{Value, json};

const TOKEN: &str = "test-admin-token";

fn admin_server() -> &'static common::Server {
    static S: OnceLock<common::Server> = OnceLock::new();
    S.get_or_init(|| {
        let mut args = ServeArgs {
            port: Some(0),
            no_fetch: true,
            preload: Some(vec!["all-minilm-l6-v2".into()]),
            admin_token: Some(TOKEN.parse().unwrap()),
            ..Default::default()
        };
        args.keep_alive = Some("10m".into());
        common::start_with(args)
    })
}

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static L: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    L.get_or_init(|| tokio::sync::Mutex::new(())).lock().await
}

async fn admin(s: &common::Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let c = common::client();
    let url = format!("{}{path}", s.base);
    let req = if method == "GET" {
        c.get(url)
    } else {
        c.post(url)
    };
    let req = req.bearer_auth(TOKEN);
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let res = req.send().await.unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

async fn model(s: &common::Server, id: &str) -> Value {
    let (_, list) = admin(s, "GET", "/admin/models", None).await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .cloned()
        .unwrap()
}

async fn rss(s: &common::Server) -> u64 {
    admin(s, "GET", "/admin/memory", None).await.1["process_rss_bytes"]
        .as_u64()
        .unwrap()
}

async fn loads(s: &common::Server, id: &str) -> u64 {
    let text = common::client()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("nfai_model_loads_total{{model=\"{id}\",result=\"success\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap()
        .parse()
        .unwrap()
}

async fn wait_state(s: &common::Server, id: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while model(s, id).await["state"] != state {
        assert!(
            Instant::now() < deadline,
            "{id} never reached {state}: {}",
            model(s, id).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn admin_api_requires_the_token_and_has_its_shape() {
    let _g = serial().await;
    let s = admin_server();
    for auth in [None, Some("wrong")] {
        let mut req = common::client().get(format!("{}/admin/models", s.base));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401);
        common::assert_error(
            &res.json().await.unwrap(),
            "authentication_error",
            None,
            Some("invalid_admin_token"),
        );
    }
    let (status, list) = admin(s, "GET", "/admin/models", None).await;
    assert_eq!(status, 200);
    let m = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "all-minilm-l6-v2")
        .unwrap();
    for key in [
        "id",
        "kind",
        "state",
        "device",
        "estimated_bytes",
        "actual_bytes",
        "pinned",
        "keep_alive",
        "expires_at",
        "last_used_at",
        "loaded_at",
        "load_duration_ms",
        "in_flight",
        "requests_served",
        "last_error",
        "waiters",
    ] {
        assert!(m.get(key).is_some(), "missing {key}: {m}");
    }
    assert_eq!(
        (
            m["state"].as_str(),
            m["device"].as_str(),
            m["keep_alive"].as_str()
        ),
        (Some("ready"), Some("cpu"), Some("10m"))
    );
    assert!(m["actual_bytes"].as_u64().unwrap() > 50_000_000, "{m}");
    let (status, mem) = admin(s, "GET", "/admin/memory", None).await;
    assert_eq!(status, 200);
    let cpu = &mem["data"][0];
    assert_eq!(cpu["device"], "cpu");
    assert!(cpu["budget_bytes"].as_u64().unwrap() > cpu["used_bytes"].as_u64().unwrap());
    assert!(
        cpu["resident"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "all-minilm-l6-v2")
    );
    let (status, pinned) = admin(s, "POST", "/admin/models/all-minilm-l6-v2/pin", None).await;
    assert_eq!((status, pinned["pinned"].as_bool()), (200, Some(true)));
    let (status, unpinned) = admin(s, "POST", "/admin/models/all-MiniLM-L6-v2/unpin", None).await;
    assert_eq!((status, unpinned["pinned"].as_bool()), (200, Some(false)));
    let (status, missing) = admin(s, "POST", "/admin/models/nope/load", None).await;
    assert_eq!(status, 404);
    common::assert_error(
        &missing,
        "invalid_request_error",
        Some("model"),
        Some("model_not_found"),
    );
    let (status, bad) = admin(
        s,
        "POST",
        "/admin/models/gemma-3-270m/load",
        Some(json!({"keep_alive": "soon"})),
    )
    .await;
    assert_eq!(status, 400);
    common::assert_error(
        &bad,
        "invalid_request_error",
        Some("keep_alive"),
        Some("invalid_value"),
    );
    let text = common::client()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "nfai_model_loads_total",
        "nfai_model_load_duration_seconds_bucket",
        "nfai_model_evictions_total",
        "nfai_model_state",
        "nfai_memory_bytes",
        "nfai_model_load_waiters",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
}

#[tokio::test]
async fn twenty_concurrent_requests_to_a_cold_model_cause_one_load() {
    let _g = serial().await;
    let s = admin_server();
    admin(s, "POST", "/admin/models/gemma-3-270m/unload", None).await;
    wait_state(s, "gemma-3-270m", "unloaded").await;
    let before = loads(s, "gemma-3-270m").await;
    let started = Instant::now();
    let requests = (0..20).map(|i| {
        common::post(
            s,
            "/v1/completions",
            gemma_completion(&format!("Say {i}."), 2),
        )
    });
    let results = futures::future::join_all(requests).await;
    println!("20 cold requests answered in {:?}", started.elapsed());
    for (status, body) in results {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(loads(s, "gemma-3-270m").await, before + 1);
}

#[tokio::test]
async fn unload_returns_the_memory_and_the_model_loads_again() {
    let _g = serial().await;
    let s = admin_server();
    let (status, loaded) = admin(s, "POST", "/admin/models/gemma-3-270m/load", None).await;
    assert_eq!(
        (status, loaded["state"].as_str()),
        (200, Some("ready")),
        "{loaded}"
    );
    let path = nfai_models::default_model_dir()
        .join("gemma-3-270m")
        .join("gemma-3-270m-q4_k_m.gguf");
    // The estimate before any load (catalog: 4096 positions, 4 sequences, f16 KV on the CPU),
    // and what the load really took (the KV reservation is not allocated until sequences run).
    let est = nfai_models::memory::estimate_gguf(&path, 4096, 4, 2).unwrap();
    let estimate = est.total_bytes;
    let prefix_cache = nfai_router::config::defaults::PREFIX_CACHE_BYTES;
    let resident = loaded["actual_bytes"].as_u64().unwrap() - est.kv_bytes - prefix_cache;
    let before = rss(s).await;
    let (status, unloaded) = admin(
        s,
        "POST",
        "/admin/models/gemma-3-270m/unload",
        Some(json!({"timeout_secs": 10})),
    )
    .await;
    assert_eq!(
        (status, unloaded["state"].as_str()),
        (200, Some("unloaded")),
        "{unloaded}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = rss(s).await;
    while before.saturating_sub(after) < estimate * 7 / 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = rss(s).await;
    }
    let fell = before.saturating_sub(after);
    println!(
        "RSS {before} -> {after}: fell {fell} bytes; resident size {resident}, estimate {estimate}"
    );
    assert!(
        fell >= estimate * 7 / 10,
        "RSS fell {fell} bytes, less than 70% of the estimate {estimate} (resident {resident})"
    );
    let (status, again) = admin(s, "POST", "/admin/models/gemma-3-270m/load", None).await;
    assert_eq!((status, again["state"].as_str()), (200, Some("ready")));
    let (status, _) = common::post(s, "/v1/completions", gemma_completion("Hi", 2)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn keep_alive_zero_unloads_after_the_request_and_the_replica_stays_ready() {
    let _g = serial().await;
    let s = admin_server();
    let (status, body) = common::post(
        s,
        "/v1/embeddings",
        json!({"model": "all-minilm-l6-v2", "input": "bye", "keep_alive": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_state(s, "all-minilm-l6-v2", "unloaded").await;
    // The preloaded model is gone from memory, but it loads again on demand: still ready.
    let res = common::client()
        .get(format!("{}/ready", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, _) = common::post(
        s,
        "/v1/embeddings",
        json!({"model": "all-minilm-l6-v2", "input": "hi", "keep_alive": "-1"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(model(s, "all-minilm-l6-v2").await["keep_alive"], "-1");
    assert_eq!(model(s, "all-minilm-l6-v2").await["state"], "ready");
    let res = common::client()
        .get(format!("{}/ready", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, bad) = common::post(
        s,
        "/v1/embeddings",
        json!({"model": "all-minilm-l6-v2", "input": "x", "keep_alive": []}),
    )
    .await;
    assert_eq!(status, 400);
    common::assert_error(
        &bad,
        "invalid_request_error",
        Some("keep_alive"),
        Some("invalid_value"),
    );
}

#[tokio::test]
async fn a_budget_for_one_model_evicts_the_idle_other() {
    let _g = serial().await;
    let dir = nfai_models::default_model_dir();
    let gemma = nfai_models::memory::estimate_gguf(
        &dir.join("gemma-3-270m/gemma-3-270m-q4_k_m.gguf"),
        4096,
        4,
        2,
    )
    .unwrap();
    let bert = nfai_models::memory::estimate_bert(&dir.join("all-minilm-l6-v2")).unwrap();
    // Either model fits alone (Gemma with its prefix cache); both do not.
    let budget = gemma.total_bytes + nfai_router::config::defaults::PREFIX_CACHE_BYTES + bert / 4;
    let args = ServeArgs {
        port: Some(0),
        no_fetch: true,
        preload: Some(Vec::new()),
        ram_budget_bytes: Some(budget),
        admin_token: Some(TOKEN.parse().unwrap()),
        ..Default::default()
    };
    let s = common::start_with(args);
    let (status, _) = common::post(
        &s,
        "/v1/embeddings",
        json!({"model": "all-minilm-l6-v2", "input": "first"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(model(&s, "all-minilm-l6-v2").await["state"], "ready");
    let (status, body) = common::post(&s, "/v1/completions", gemma_completion("Hello", 2)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(model(&s, "all-minilm-l6-v2").await["state"], "unloaded");
    assert_eq!(model(&s, "gemma-3-270m").await["state"], "ready");
    let text = common::client()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("nfai_model_evictions_total{model=\"all-minilm-l6-v2\",reason=\"lru\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_model_that_cannot_fit_is_refused_with_503() {
    let _g = serial().await;
    let args = ServeArgs {
        port: Some(0),
        no_fetch: true,
        preload: Some(Vec::new()),
        ram_budget_bytes: Some(16 * 1024 * 1024),
        ..Default::default()
    };
    let s = common::start_with(args);
    let (status, body) = common::post(
        &s,
        "/v1/embeddings",
        json!({"model": "all-minilm-l6-v2", "input": "x"}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    common::assert_error(&body, "server_error", None, Some("insufficient_memory"));
    assert!(
        body["error"]["message"].as_str().unwrap().contains("bytes"),
        "{body}"
    );
}

#[tokio::test]
async fn the_cli_drives_the_admin_api() {
    use nfai_router::admin_cli;
    use nfai_router::config::{AdminArgs, ModelsCommand};
    let _g = serial().await;
    let s = admin_server();
    let admin_args = AdminArgs {
        url: s.base.clone(),
        token: Some(TOKEN.parse().unwrap()),
    };
    let id = "all-minilm-l6-v2".to_string();
    admin_cli::run(ModelsCommand::Unload {
        admin: admin_args.clone(),
        id: id.clone(),
        force: true,
    })
    .await
    .unwrap();
    wait_state(s, &id, "unloaded").await;
    admin_cli::run(ModelsCommand::Load {
        admin: admin_args.clone(),
        id: id.clone(),
        keep_alive: Some("-1".into()),
        pin: true,
    })
    .await
    .unwrap();
    let m = model(s, &id).await;
    assert_eq!(
        (
            m["state"].as_str(),
            m["pinned"].as_bool(),
            m["keep_alive"].as_str()
        ),
        (Some("ready"), Some(true), Some("-1"))
    );
    admin_cli::run(ModelsCommand::Unpin {
        admin: admin_args.clone(),
        id: id.clone(),
    })
    .await
    .unwrap();
    assert_eq!(model(s, &id).await["pinned"], false);
    admin_cli::run(ModelsCommand::List(admin_args.clone()))
        .await
        .unwrap();
    let wrong = AdminArgs {
        url: s.base.clone(),
        token: None,
    };
    let err = admin_cli::run(ModelsCommand::List(wrong))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("401"), "{err}");
}

/// A short greedy completion from Gemma 3 270M, the base model whose residency these tests
/// follow.
fn gemma_completion(prompt: &str, max_tokens: u32) -> serde_json::Value {
    json!({"model": "gemma-3-270m", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
}
