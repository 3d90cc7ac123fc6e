//! Who sees which files and vector stores once API keys exist: a key reads and changes what it
//! created, reads what no key owns (the admin token's stores, the server's sources') but may
//! not change it (403), and gets 404 for every object of another key, exactly as for a missing
//! one, on every route: files, stores, store files, batches, search and the Responses API's
//! `file_search`. The admin token sees and changes everything.

use std::time::Duration;

use serde_json::{Value, json};

use crate::auth_support::{ADMIN, args, create_key};
use crate::common::{client, start_with};
use crate::vector_stores_support::multipart;

const E5: &str = "multilingual-e5-small";

async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get(base: &str, path: &str, token: &str) -> (u16, Value) {
    call(base, reqwest::Method::GET, path, token, None).await
}

async fn post(base: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    call(base, reqwest::Method::POST, path, token, Some(body)).await
}

async fn delete(base: &str, path: &str, token: &str) -> (u16, Value) {
    call(base, reqwest::Method::DELETE, path, token, None).await
}

async fn upload(base: &str, token: &str, name: &str, text: &str) -> String {
    let (ct, body) = multipart(name, "text/plain", text.as_bytes());
    let res = client()
        .post(format!("{base}/v1/files"))
        .bearer_auth(token)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

/// A store holding one file, made by `token`; waits until the file is embedded.
async fn store_with(base: &str, token: &str, name: &str, file: &str) -> String {
    let (status, store) = post(base, "/v1/vector_stores", token, json!({"name": name})).await;
    assert_eq!(status, 200, "{store}");
    let id = store["id"].as_str().unwrap().to_owned();
    let (status, body) = post(
        base,
        &format!("/v1/vector_stores/{id}/files"),
        token,
        json!({"file_id": file}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..600 {
        let (_, f) = get(base, &format!("/v1/vector_stores/{id}/files/{file}"), token).await;
        if f["status"] == "completed" {
            return id;
        }
        assert_eq!(f["status"], "in_progress", "{f}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{file} was not embedded");
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_not_found(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 404, "{what}: {body}");
    assert_eq!(body["error"]["code"], "not_found", "{what}: {body}");
}

#[tokio::test]
async fn keys_see_their_own_and_shared_stores_and_never_another_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(args(dir.path(), &[E5, "smollm2-135m-instruct"]));
    let base = server.base.as_str();
    let a = create_key(&server, json!({"name": "team-a"})).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = create_key(&server, json!({"name": "team-b"})).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();

    let a_file = upload(
        base,
        &a,
        "a.txt",
        "Khách hàng Sao Mai đặt 40 máy in công nghiệp.",
    )
    .await;
    let a_store = store_with(base, &a, "a-store", &a_file).await;
    let shared_file = upload(
        base,
        ADMIN,
        "policy.txt",
        "Refunds are paid within 14 days.",
    )
    .await;
    let shared = store_with(base, ADMIN, "shared", &shared_file).await;

    // B sees neither A's file nor A's store, on any route: 404 as for a missing id.
    for path in [
        format!("/v1/files/{a_file}"),
        format!("/v1/files/{a_file}/content"),
        format!("/v1/vector_stores/{a_store}"),
        format!("/v1/vector_stores/{a_store}/files"),
        format!("/v1/vector_stores/{a_store}/files/{a_file}"),
    ] {
        let (status, body) = get(base, &path, &b).await;
        assert_not_found(status, &body, &path);
    }
    let (status, body) = post(
        base,
        &format!("/v1/vector_stores/{a_store}/search"),
        &b,
        json!({"query": "máy in"}),
    )
    .await;
    assert_not_found(status, &body, "search of another key's store");
    let (status, body) = delete(base, &format!("/v1/files/{a_file}"), &b).await;
    assert_not_found(status, &body, "delete of another key's file");
    let (status, body) = delete(base, &format!("/v1/vector_stores/{a_store}"), &b).await;
    assert_not_found(status, &body, "delete of another key's store");
    // Nor can B put A's file into a store of its own.
    let (status, b_store) = post(base, "/v1/vector_stores", &b, json!({"name": "b"})).await;
    assert_eq!(status, 200, "{b_store}");
    let b_store = b_store["id"].as_str().unwrap().to_owned();
    let (status, body) = post(
        base,
        &format!("/v1/vector_stores/{b_store}/files"),
        &b,
        json!({"file_id": a_file}),
    )
    .await;
    assert_not_found(status, &body, "attaching another key's file");
    assert_eq!(body["error"]["param"], "file_id", "{body}");
    let (status, body) = post(
        base,
        "/v1/responses",
        &b,
        json!({
            "model": "default",
            "input": "Sao Mai đặt bao nhiêu máy in?",
            "max_output_tokens": 4,
            "tools": [{"type": "file_search", "vector_store_ids": [a_store]}],
        }),
    )
    .await;
    assert_not_found(status, &body, "file_search over another key's store");
    assert_eq!(
        body["error"]["param"], "tools[0].vector_store_ids",
        "{body}"
    );

    // Lists: each key gets its own objects and the shared ones; the admin token gets all.
    let (_, list) = get(base, "/v1/vector_stores", &b).await;
    let mut seen = ids(&list);
    seen.sort();
    let mut want = vec![b_store.clone(), shared.clone()];
    want.sort();
    assert_eq!(seen, want, "{list}");
    let (_, list) = get(base, "/v1/files", &b).await;
    assert_eq!(ids(&list), vec![shared_file.clone()], "{list}");
    let (_, list) = get(base, "/v1/vector_stores", ADMIN).await;
    assert_eq!(ids(&list).len(), 3, "{list}");
    let (_, list) = get(base, "/v1/files", &a).await;
    let mut seen = ids(&list);
    seen.sort();
    let mut want = vec![a_file.clone(), shared_file.clone()];
    want.sort();
    assert_eq!(seen, want, "{list}");

    // A shared store: every key searches it, and only the admin token changes it.
    let (status, found) = post(
        base,
        &format!("/v1/vector_stores/{shared}/search"),
        &b,
        json!({"query": "refund"}),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["data"][0]["file_id"], shared_file.as_str(), "{found}");
    for (status, body) in [
        delete(base, &format!("/v1/vector_stores/{shared}"), &b).await,
        post(
            base,
            &format!("/v1/vector_stores/{shared}"),
            &b,
            json!({"name": "mine now"}),
        )
        .await,
        post(
            base,
            &format!("/v1/vector_stores/{shared}/files"),
            &b,
            json!({"file_id": shared_file}),
        )
        .await,
        delete(base, &format!("/v1/files/{shared_file}"), &b).await,
    ] {
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "permission_denied", "{body}");
        assert_eq!(body["error"]["type"], "permission_error", "{body}");
    }

    // The owner and the admin token keep full use.
    let (status, body) = get(base, &format!("/v1/vector_stores/{a_store}"), &a).await;
    assert_eq!(
        (status, body["file_counts"]["completed"].as_u64()),
        (200, Some(1))
    );
    let (status, body) = get(base, &format!("/v1/files/{a_file}"), ADMIN).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = delete(base, &format!("/v1/vector_stores/{a_store}"), &a).await;
    assert_eq!(
        (status, body["deleted"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (status, body) = delete(base, &format!("/v1/vector_stores/{shared}"), ADMIN).await;
    assert_eq!(
        (status, body["deleted"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
}
