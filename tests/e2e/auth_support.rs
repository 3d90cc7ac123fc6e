//! Servers with API keys for the auth, limits and TLS tests: each has its own data directory
//! (its key store) and the admin token [`ADMIN`].

use std::path::Path;

use nfai_router::config::{Secret, ServeArgs};
use serde_json::{Value, json};

use crate::common::{Server, client, start_with};

pub const ADMIN: &str = "admin-token-for-tests";

/// Arguments of a server on 127.0.0.1:0 serving `models`, keeping keys in `data_dir`.
pub fn args(data_dir: &Path, models: &[&str]) -> ServeArgs {
    ServeArgs {
        port: Some(0),
        no_fetch: true,
        serve: Some(models.iter().map(|m| m.to_string()).collect()),
        admin_token: Some(Secret::new(ADMIN.to_string())),
        data_dir: Some(data_dir.to_path_buf()),
        ..Default::default()
    }
}

/// A server serving nothing (the routes that need no model).
pub fn bare(data_dir: &Path) -> Server {
    start_with(args(data_dir, &[]))
}

/// `POST /admin/keys` with `body`: the key object, its secret included.
pub async fn create_key(server: &Server, body: Value) -> Value {
    let res = client()
        .post(format!("{}/admin/keys", server.base))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let key: Value = res.json().await.unwrap();
    assert!(
        key["secret"].as_str().unwrap().starts_with("nfai-"),
        "{key}"
    );
    key
}

/// `GET path` with `Authorization: Bearer token` (none when `token` is `None`).
pub async fn get(server: &Server, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = client().get(format!("{}{path}", server.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// `POST path` with a JSON body and a bearer token.
pub async fn post(server: &Server, path: &str, token: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", server.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A chat request that costs little.
pub fn tiny_chat(model: &str, max_tokens: u32) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": max_tokens,
        "temperature": 0
    })
}

/// Waits, when the current minute is nearly over, for the next one: a test that counts
/// requests in one rate-limit window must not straddle two.
pub async fn fresh_window() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into = now.as_secs() % 60;
    if into >= 40 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - into)).await;
    }
}

/// Waits until just after the next Unix second begins, so that the next request is admitted
/// against a second's share of `rpm` that no earlier request used.
pub async fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let left = std::time::Duration::from_secs(1)
        - std::time::Duration::from_nanos(now.subsec_nanos().into());
    tokio::time::sleep(left + std::time::Duration::from_millis(20)).await;
}

/// Polls `check` every 100 ms until it holds; fails after 15 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("gave up waiting: {what}");
}
