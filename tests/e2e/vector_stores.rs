//! Files and vector stores over HTTP with multilingual-e5-small: failures of one file that
//! leave the others alone (empty, corrupt PDF), the upload limit, NFC/NFD Vietnamese, filter
//! errors, 404s, persistence across a restart without re-embedding, and searches answering
//! while a large file ingests.

use std::sync::OnceLock;

use serde_json::{Value, json};
use unicode_normalization::UnicodeNormalization;

use super::vector_stores_support::*;
use crate::common::assert_error;

/// `text` in Unicode NFD (decomposed), as some systems store Vietnamese.
fn nfd(text: &str) -> String {
    text.nfd().collect()
}

/// The upload limit of the shared server.
const MAX_BYTES: u64 = 2 * 1024 * 1024;

fn shared() -> &'static OwnedServer {
    static S: OnceLock<OwnedServer> = OnceLock::new();
    S.get_or_init(|| {
        let dir = data_dir("shared");
        OwnedServer::start("vector-stores", &config(&dir, MAX_BYTES, true))
    })
}

const VI_DELIVERY: &str =
    "Đơn hàng số 4521 của khách hàng Nguyễn Văn An sẽ được giao vào thứ Sáu tuần này tại Hà Nội.";
const VI_REFUND: &str =
    "Chính sách hoàn tiền: khách hàng được hoàn tiền trong vòng ba mươi ngày nếu sản phẩm bị lỗi.";
const EN_INVOICE: &str =
    "Invoice 1234 was paid late by the customer; a reminder was sent on Monday.";

#[tokio::test]
async fn an_empty_file_fails_alone_with_last_error() {
    let s = shared();
    let store = create_store(&s.base, "empty").await;
    let empty = upload_ok(&s.base, "empty.txt", b"").await;
    let good = upload_ok(&s.base, "good.txt", EN_INVOICE.as_bytes()).await;
    attach(&s.base, &store, &empty, json!({})).await;
    attach(&s.base, &store, &good, json!({})).await;
    let failed = wait_file(&s.base, &store, &empty).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["last_error"]["code"], "invalid_file", "{failed}");
    assert!(
        failed["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("empty")
    );
    let done = wait_file(&s.base, &store, &good).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["usage_bytes"].as_u64().unwrap() > 0);
    let (_, store_obj) = get_json(&s.base, &format!("/v1/vector_stores/{store}")).await;
    assert_eq!(
        store_obj["file_counts"],
        json!({"in_progress": 0, "completed": 1, "failed": 1, "cancelled": 0, "total": 2})
    );
    assert_eq!(store_obj["usage_bytes"], done["usage_bytes"]);
    assert_eq!(store_obj["status"], "completed");
}

#[tokio::test]
async fn a_file_over_max_bytes_is_413_and_leaves_nothing() {
    let s = shared();
    let (_, before) = get_json(&s.base, "/v1/files?limit=100").await;
    let big = vec![b'a'; usize::try_from(MAX_BYTES).unwrap() + 1];
    let (status, body) = upload(&s.base, "big.txt", "text/plain", &big).await;
    assert_eq!(status, 413, "{body}");
    assert_error(
        &body,
        "invalid_request_error",
        Some("file"),
        Some("file_too_large"),
    );
    let exact = vec![b'a'; usize::try_from(MAX_BYTES).unwrap()];
    let (status, body) = upload(&s.base, "exact.txt", "text/plain", &exact).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bytes"], MAX_BYTES);
    let (_, after) = get_json(&s.base, "/v1/files?limit=100").await;
    let names = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["filename"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(!names(&before).contains(&"exact.txt".to_owned()));
    assert!(names(&after).contains(&"exact.txt".to_owned()));
    assert!(!names(&after).contains(&"big.txt".to_owned()));
}

#[tokio::test]
async fn a_corrupt_pdf_fails_while_the_other_files_complete() {
    let s = shared();
    let store = create_store(&s.base, "batch").await;
    let pdf = {
        let (status, body) = upload(
            &s.base,
            "broken.pdf",
            "application/pdf",
            b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage without xref",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body["id"].as_str().unwrap().to_owned()
    };
    let txt = upload_ok(&s.base, "delivery.txt", VI_DELIVERY.as_bytes()).await;
    let (status, html) = upload(
        &s.base,
        "refund.html",
        "text/html",
        format!("<html><body><p>{VI_REFUND}</p><script>x()</script></body></html>").as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{html}");
    let html = html["id"].as_str().unwrap().to_owned();
    let (status, batch) = post_json(
        &s.base,
        &format!("/v1/vector_stores/{store}/file_batches"),
        json!({ "file_ids": [pdf, txt, html] }),
    )
    .await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["object"], "vector_store.files_batch");
    let batch_id = batch["id"].as_str().unwrap();
    for id in [&pdf, &txt, &html] {
        wait_file(&s.base, &store, id).await;
    }
    let (_, batch) = get_json(
        &s.base,
        &format!("/v1/vector_stores/{store}/file_batches/{batch_id}"),
    )
    .await;
    assert_eq!(batch["status"], "completed", "{batch}");
    assert_eq!(batch["file_counts"]["completed"], 2, "{batch}");
    assert_eq!(batch["file_counts"]["failed"], 1, "{batch}");
    let broken = wait_file(&s.base, &store, &pdf).await;
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["last_error"]["code"], "invalid_file", "{broken}");
    let (_, failed) = get_json(
        &s.base,
        &format!("/v1/vector_stores/{store}/file_batches/{batch_id}/files?filter=failed"),
    )
    .await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed["data"][0]["id"], pdf.as_str());
    let (status, found) = search(
        &s.base,
        &store,
        json!({ "query": "Khi nào đơn hàng 4521 được giao?", "max_num_results": 1 }),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(hits(&found)[0].0, txt, "{found}");
}

#[tokio::test]
async fn nfc_and_nfd_vietnamese_find_the_same_chunk() {
    let s = shared();
    let store = create_store(&s.base, "unicode").await;
    let decomposed = nfd(VI_DELIVERY);
    assert_ne!(decomposed, VI_DELIVERY, "the fixture must differ in NFD");
    let a = upload_ok(&s.base, "delivery-nfd.txt", decomposed.as_bytes()).await;
    let b = upload_ok(&s.base, "refund.txt", VI_REFUND.as_bytes()).await;
    let c = upload_ok(&s.base, "invoice.txt", EN_INVOICE.as_bytes()).await;
    for id in [&a, &b, &c] {
        attach(&s.base, &store, id, json!({})).await;
    }
    for id in [&a, &b, &c] {
        assert_eq!(wait_file(&s.base, &store, id).await["status"], "completed");
    }
    let query = "Đơn hàng 4521 được giao khi nào?";
    let (_, nfc) = search(&s.base, &store, json!({ "query": query })).await;
    let (_, nfd_answer) = search(&s.base, &store, json!({ "query": nfd(query) })).await;
    assert_eq!(hits(&nfc)[0].0, a, "{nfc}");
    assert_eq!(hits(&nfc), hits(&nfd_answer));
    assert_eq!(nfc["data"][0]["score"], nfd_answer["data"][0]["score"]);
    // Stored text is NFC whatever the upload's form.
    assert_eq!(hits(&nfc)[0].1, VI_DELIVERY);
}

#[tokio::test]
async fn bad_filters_and_search_options_are_400_naming_them() {
    let s = shared();
    let store = create_store(&s.base, "filters").await;
    let f = upload_ok(&s.base, "delivery.txt", VI_DELIVERY.as_bytes()).await;
    attach(
        &s.base,
        &store,
        &f,
        json!({ "region": "north", "year": 2024 }),
    )
    .await;
    wait_file(&s.base, &store, &f).await;
    let ok = |filters: Value| json!({ "query": "giao hàng", "filters": filters });
    let (status, body) = search(
        &s.base,
        &store,
        ok(json!({"type": "and", "filters": [
            {"type": "eq", "key": "region", "value": "north"},
            {"type": "gte", "key": "year", "value": 2020}
        ]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hits(&body).len(), 1);
    let (_, body) = search(
        &s.base,
        &store,
        ok(json!({"type": "in", "key": "region", "value": ["south", "west"]})),
    )
    .await;
    assert!(hits(&body).is_empty(), "{body}");
    for (filters, named) in [
        (
            json!({"type": "eq", "key": "customer", "value": "x"}),
            "customer",
        ),
        (json!({"type": "gt", "key": "region", "value": 3}), "region"),
        (
            json!({"type": "eq", "key": "year", "value": "2024"}),
            "year",
        ),
        (
            json!({"type": "like", "key": "region", "value": "n"}),
            "type",
        ),
    ] {
        let (status, body) = search(&s.base, &store, ok(filters.clone())).await;
        assert_eq!(status, 400, "{filters}: {body}");
        assert_eq!(body["error"]["param"], "filters", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{filters}: {message}");
    }
    let (status, body) = search(
        &s.base,
        &store,
        json!({ "query": "x", "rewrite_query": true }),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        Some("rewrite_query"),
        Some("unsupported_parameter"),
    );
    let (status, body) = search(
        &s.base,
        &store,
        json!({ "query": "x", "max_num_results": 51 }),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "max_num_results");
    let (status, body) = post_json(
        &s.base,
        &format!("/v1/vector_stores/{store}/files"),
        json!({ "file_id": f, "attributes": { "bad": [1, 2] } }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "attributes");
    let (status, body) = post_json(
        &s.base,
        "/v1/vector_stores",
        json!({ "chunking_strategy": {"type": "static", "static":
            {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}} }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["param"],
        "chunking_strategy.static.max_chunk_size_tokens"
    );
}

#[tokio::test]
async fn unknown_ids_are_404_in_openais_shape() {
    let s = shared();
    let store = create_store(&s.base, "ids").await;
    for path in [
        "/v1/files/file-nope".to_owned(),
        "/v1/files/file-nope/content".to_owned(),
        "/v1/vector_stores/vs_nope".to_owned(),
        "/v1/vector_stores/vs_nope/files".to_owned(),
        format!("/v1/vector_stores/{store}/files/file-nope"),
        format!("/v1/vector_stores/{store}/file_batches/vsfb_nope"),
    ] {
        let (status, body) = get_json(&s.base, &path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_error(&body, "invalid_request_error", None, Some("not_found"));
    }
    let (status, body) = search(&s.base, "vs_nope", json!({ "query": "x" })).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = post_json(
        &s.base,
        &format!("/v1/vector_stores/{store}/files"),
        json!({ "file_id": "file-nope" }),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = delete(&s.base, &format!("/v1/vector_stores/{store}")).await;
    assert_eq!(status, 200);
    let (status, _) = delete(&s.base, &format!("/v1/vector_stores/{store}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn stores_survive_a_restart_without_re_embedding() {
    let dir = data_dir("restart");
    let first = OwnedServer::start("vs-restart-1", &config(&dir, MAX_BYTES, true));
    let store = create_store(&first.base, "crm").await;
    let mut files = Vec::new();
    for (name, text) in [
        ("a.txt", VI_DELIVERY),
        ("b.txt", VI_REFUND),
        ("c.txt", EN_INVOICE),
    ] {
        let id = upload_ok(&first.base, name, text.as_bytes()).await;
        attach(&first.base, &store, &id, json!({ "name": name })).await;
        files.push(id);
    }
    for id in &files {
        assert_eq!(
            wait_file(&first.base, &store, id).await["status"],
            "completed"
        );
    }
    let query = json!({ "query": ["hoàn tiền", "late invoice"], "max_num_results": 3 });
    let (_, before) = search(&first.base, &store, query.clone()).await;
    let (_, store_before) = get_json(&first.base, &format!("/v1/vector_stores/{store}")).await;
    let runs = first.state().retrieval().unwrap().ingest_runs();
    assert_eq!(runs, 3);
    first.stop();

    // e5 is not preloaded: nothing runs the model until the search below.
    let second = OwnedServer::start("vs-restart-2", &config(&dir, MAX_BYTES, false));
    let (_, after) = search(&second.base, &store, query).await;
    assert_eq!(hits(&before), hits(&after));
    assert_eq!(hits(&after).len(), 3);
    let (_, store_after) = get_json(&second.base, &format!("/v1/vector_stores/{store}")).await;
    assert_eq!(store_before, store_after);
    let (_, listed) = get_json(&second.base, &format!("/v1/vector_stores/{store}/files")).await;
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "completed")
    );
    assert_eq!(second.state().retrieval().unwrap().ingest_runs(), 0);
    let (status, content) = call(
        reqwest::Method::GET,
        format!("{}/v1/files/{}/content", second.base, files[0]),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(content["raw"], VI_DELIVERY);
    second.stop();
}

#[tokio::test]
async fn searches_answer_while_a_large_file_ingests() {
    let dir = data_dir("large");
    let s = OwnedServer::start("vs-large", &config(&dir, 8 * 1024 * 1024, true));
    let store = create_store(&s.base, "large").await;
    let small = upload_ok(&s.base, "delivery.txt", VI_DELIVERY.as_bytes()).await;
    attach(&s.base, &store, &small, json!({})).await;
    wait_file(&s.base, &store, &small).await;
    let mut text = String::with_capacity(5 * 1024 * 1024 + 1024);
    let mut i = 0u64;
    while text.len() < 5 * 1024 * 1024 {
        text.push_str(&format!(
            "Ghi chú {i}: khách hàng số {i} hỏi về hóa đơn và lịch giao hàng. Customer {i} asked about invoice {i}.\n"
        ));
        i += 1;
    }
    let large = upload_ok(&s.base, "large.txt", text.as_bytes()).await;
    attach(&s.base, &store, &large, json!({})).await;
    let mut answered_during_ingestion = 0;
    for _ in 0..3 {
        let (status, body) = search(
            &s.base,
            &store,
            json!({ "query": "Khi nào đơn hàng 4521 được giao?", "max_num_results": 5 }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (_, f) = get_json(&s.base, &format!("/v1/vector_stores/{store}/files/{large}")).await;
        if f["status"] == "in_progress" {
            answered_during_ingestion += 1;
        }
    }
    assert!(
        answered_during_ingestion > 0,
        "the large file finished first"
    );
    let (_, st) = get_json(&s.base, &format!("/v1/vector_stores/{store}")).await;
    assert_eq!(st["status"], "in_progress", "{st}");
    assert_eq!(st["file_counts"]["in_progress"], 1, "{st}");
    // Deleting the store stops its ingestion.
    let (status, body) = delete(&s.base, &format!("/v1/vector_stores/{store}")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get_json(&s.base, &format!("/v1/vector_stores/{store}")).await;
    assert_eq!(status, 404);
    s.stop();
}
