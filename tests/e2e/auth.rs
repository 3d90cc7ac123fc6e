//! API keys: the door of `/v1` and `/api` (401 in OpenAI's and Ollama's shapes, malformed
//! headers), open routes, keys restricted to a model (404), the admin key lifecycle over HTTP
//! and through `nfai keys` on the same data directory, and the refusal to serve a public
//! address without keys.

use clap::Parser;
use nfai_router::config::{Cli, Command, Config};
use serde_json::{Value, json};

use crate::auth_support::*;
use crate::common::{assert_error, client, start_with};

#[tokio::test]
async fn once_a_key_exists_v1_and_api_need_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = bare(dir.path());
    // No key yet: a loopback server is open.
    assert_eq!(get(&s, "/v1/models", None).await.status(), 200);
    let key = create_key(&s, json!({"name": "crm"})).await;
    let secret = key["secret"].as_str().unwrap();

    let res = get(&s, "/v1/models", None).await;
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_error(
        &body,
        "invalid_request_error",
        None,
        Some("invalid_api_key"),
    );
    let res = get(&s, "/api/tags", None).await;
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].is_string(), "Ollama's shape: {body}");
    assert_eq!(
        get(&s, "/v1/models", Some("nfai-wrong")).await.status(),
        401
    );

    assert_eq!(get(&s, "/v1/models", Some(secret)).await.status(), 200);
    assert_eq!(get(&s, "/api/tags", Some(secret)).await.status(), 200);
    // The admin token opens /v1 too; a user key never opens /admin.
    assert_eq!(get(&s, "/v1/models", Some(ADMIN)).await.status(), 200);
    assert_eq!(get(&s, "/admin/keys", Some(secret)).await.status(), 401);
    for open in ["/health", "/ready", "/metrics"] {
        assert_eq!(get(&s, open, None).await.status(), 200, "{open}");
    }

    // Malformed and over-long Authorization headers are 401, never 500.
    let long = format!("Bearer {}", "x".repeat(20_000));
    let bad: Vec<reqwest::header::HeaderValue> = vec![
        reqwest::header::HeaderValue::from_static("Basic abc"),
        reqwest::header::HeaderValue::from_static("Bearer"),
        reqwest::header::HeaderValue::from_static("nfai-no-scheme"),
        reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        reqwest::header::HeaderValue::from_str(&long).unwrap(),
    ];
    for v in bad {
        let res = client()
            .get(format!("{}/v1/models", s.base))
            .header("authorization", v.clone())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!(
            status == 400 || status == 401 || status == 431,
            "{v:?}: {status}"
        );
    }
}

#[tokio::test]
async fn the_admin_api_makes_lists_and_revokes_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = bare(dir.path());
    let key = create_key(
        &s,
        json!({"name": "billing", "models": ["default"], "rpm": 10, "tpm": 1000}),
    )
    .await;
    let (id, secret) = (key["id"].as_str().unwrap(), key["secret"].as_str().unwrap());
    assert_eq!(key["rpm"], 10);

    let list: Value = get(&s, "/admin/keys", Some(ADMIN))
        .await
        .json()
        .await
        .unwrap();
    let listed = &list["data"][0];
    assert_eq!(
        (listed["id"].as_str(), listed["name"].as_str()),
        (Some(id), Some("billing"))
    );
    assert!(
        listed.get("secret").is_none(),
        "secrets are shown once: {listed}"
    );
    let stored = std::fs::read_to_string(dir.path().join("keys.json")).unwrap();
    assert!(!stored.contains(secret), "only the hash is stored");

    // Bad fields are named.
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "rpm": 0}), "rpm"),
        (json!({"name": "x", "expires_at": 5}), "expires_at"),
        (json!({"name": "x", "models": []}), "models"),
    ] {
        let res = client()
            .post(format!("{}/admin/keys", s.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
        let e: Value = res.json().await.unwrap();
        assert_eq!(e["error"]["param"], field, "{e}");
    }

    let usage: Value = get(&s, &format!("/admin/keys/{id}/usage"), Some(ADMIN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["key_id"], id);
    assert_eq!(usage["window"]["limit_requests"], 10);

    // Another key keeps the server closed once this one is gone.
    create_key(&s, json!({"name": "stays"})).await;
    let res = client()
        .delete(format!("{}/admin/keys/{id}", s.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client()
        .delete(format!("{}/admin/keys/{id}", s.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(get(&s, "/v1/models", Some(secret)).await.status(), 401);
}

pub(crate) fn keys_cli(args: &[&str]) -> String {
    let cli = Cli::try_parse_from(["nfai", "keys"].iter().chain(args)).unwrap();
    let Command::Keys { command } = cli.command else {
        panic!("not a keys command")
    };
    let mut out = Vec::new();
    nfai_router::keys_cli::run_to(command, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn nfai_keys_and_the_admin_api_share_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    // A key made offline, before the server starts.
    let out = keys_cli(&[
        "create",
        "--data-dir",
        &data,
        "--name",
        "offline",
        "--rpm",
        "50",
    ]);
    let cli_secret = out.trim().to_string();
    assert!(cli_secret.starts_with("nfai-"), "{out}");
    let s = bare(dir.path());
    assert_eq!(get(&s, "/v1/models", None).await.status(), 401);
    assert_eq!(get(&s, "/v1/models", Some(&cli_secret)).await.status(), 200);

    // A key made over HTTP is listed and revoked by the CLI; the server follows.
    let key = create_key(&s, json!({"name": "online"})).await;
    let (id, secret) = (
        key["id"].as_str().unwrap().to_string(),
        key["secret"].as_str().unwrap().to_string(),
    );
    let listed = keys_cli(&["list", "--data-dir", &data]);
    assert!(
        listed.contains(&id) && listed.contains("offline"),
        "{listed}"
    );
    assert!(!listed.contains(&secret));
    assert_eq!(get(&s, "/v1/models", Some(&secret)).await.status(), 200);
    let out = keys_cli(&["revoke", "--data-dir", &data, &id]);
    assert!(out.contains(&id), "{out}");
    eventually("the server drops the revoked key", || async {
        get(&s, "/v1/models", Some(&secret)).await.status() == 401
    })
    .await;
    assert_eq!(get(&s, "/v1/models", Some(&cli_secret)).await.status(), 200);
}

#[tokio::test]
async fn a_public_address_without_keys_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path(), &[]);
    a.host = Some("0.0.0.0".parse().unwrap());
    let config = Config::from_serve_args(&a).unwrap();
    let err = nfai_router::Application::build(config).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("public address") && msg.contains("--allow-unauthenticated"),
        "{msg}"
    );
    // Allowed explicitly, it starts and serves without keys.
    a.allow_unauthenticated = true;
    let open = start_with(a.clone());
    assert_eq!(get(&open, "/v1/models", None).await.status(), 200);
    // With a key in the store, it starts and requires keys.
    a.allow_unauthenticated = false;
    let data = dir.path().to_str().unwrap().to_string();
    let secret = keys_cli(&["create", "--data-dir", &data, "--name", "first"]);
    let closed = start_with(a);
    assert_eq!(get(&closed, "/v1/models", None).await.status(), 401);
    assert_eq!(
        get(&closed, "/v1/models", Some(secret.trim()))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_key_restricted_to_one_model_sees_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_with(args(
        dir.path(),
        &["smollm2-135m-instruct", "all-minilm-l6-v2"],
    ));
    let key = create_key(
        &s,
        json!({"name": "chat-only", "models": ["smollm2-135m-instruct"]}),
    )
    .await;
    let secret = key["secret"].as_str().unwrap();

    let res = post(
        &s,
        "/v1/embeddings",
        secret,
        json!({"model": "all-minilm-l6-v2", "input": "x"}),
    )
    .await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_error(
        &body,
        "invalid_request_error",
        Some("model"),
        Some("model_not_found"),
    );
    let res = post(
        &s,
        "/api/embed",
        secret,
        json!({"model": "all-minilm-l6-v2", "input": "x"}),
    )
    .await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("all-minilm-l6-v2"),
        "{body}"
    );
    assert_eq!(
        get(&s, "/v1/models/all-minilm-l6-v2", Some(secret))
            .await
            .status(),
        404
    );

    // The allowed model, by id or by an alias of it.
    let res = post(
        &s,
        "/v1/chat/completions",
        secret,
        tiny_chat("smollm2-135m-instruct", 2),
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = post(&s, "/v1/chat/completions", secret, tiny_chat("default", 2)).await;
    assert_eq!(res.status(), 200);
    // The admin token may use every model.
    let res = post(
        &s,
        "/v1/embeddings",
        ADMIN,
        json!({"model": "all-minilm-l6-v2", "input": "x"}),
    )
    .await;
    assert_eq!(res.status(), 200);

    // The model lists show the key its model only; the admin token sees every one.
    let names = |v: &Value, list: &str, field: &str| -> Vec<String> {
        v[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m[field].as_str().unwrap().to_string())
            .collect()
    };
    for (path, list, field) in [
        ("/v1/models", "data", "id"),
        ("/api/tags", "models", "name"),
    ] {
        let res = get(&s, path, Some(secret)).await;
        assert_eq!(res.status(), 200, "{path}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(
            names(&v, list, field),
            ["smollm2-135m-instruct"],
            "{path}: {v}"
        );
        let v: Value = get(&s, path, Some(ADMIN)).await.json().await.unwrap();
        let all = names(&v, list, field);
        for id in ["smollm2-135m-instruct", "all-minilm-l6-v2"] {
            assert!(all.iter().any(|n| n == id), "{path}: {v}");
        }
    }
    let v: Value = get(&s, "/api/ps", Some(secret)).await.json().await.unwrap();
    assert!(
        names(&v, "models", "name")
            .iter()
            .all(|n| n == "smollm2-135m-instruct"),
        "{v}"
    );
}

#[tokio::test]
async fn keys_without_a_model_list_and_open_servers_list_every_model() {
    let dir = tempfile::tempdir().unwrap();
    let s = bare(dir.path());
    let count = |v: Value| v["data"].as_array().unwrap().len();
    let open: Value = get(&s, "/v1/models", None).await.json().await.unwrap();
    let key = create_key(&s, json!({"name": "all-models"})).await;
    let secret = key["secret"].as_str().unwrap();
    let keyed: Value = get(&s, "/v1/models", Some(secret))
        .await
        .json()
        .await
        .unwrap();
    assert!(count(open.clone()) >= 2, "{open}");
    assert_eq!(count(keyed), count(open));
}
