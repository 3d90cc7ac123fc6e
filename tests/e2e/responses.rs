//! `/v1/responses` with the `file_search` tool over HTTP: SmolLM2-135M-Instruct answers from a
//! vector store of Vietnamese and English CRM notes embedded by multilingual-e5-small. Covers
//! the response object and its citations, the SSE events in order with their sequence numbers,
//! stored responses (GET, DELETE, `previous_response_id`, `store: false`), refusals that name
//! their field, and a search that fails mid-stream.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde_json::{Value, json};

use super::vector_stores_support::*;
use crate::common::client;

const CHAT: &str = "smollm2-135m-instruct";

const DOCS: [(&str, &str); 4] = [
    (
        "customer-an.txt",
        "Khách hàng Nguyễn Văn An (mã KH-1042) sống ở Hà Nội; hợp đồng bảo trì được gia hạn ngày 15 tháng 3.",
    ),
    (
        "ticket-887.txt",
        "Phiếu hỗ trợ 887: khách hàng Trần Thị Bình báo lỗi đăng nhập; đội hỗ trợ đã xử lý xong vào thứ Hai.",
    ),
    (
        "deal-d311.txt",
        "Deal D-311 with Acme Logistics is worth 45,000 USD and is expected to close in June. Owner: Minh.",
    ),
    (
        "invoice-1234.txt",
        "Invoice 1234 from Acme Logistics was paid late; a payment reminder was sent on Monday.",
    ),
];

struct Crm {
    server: OwnedServer,
    store: String,
    files: HashSet<String>,
}

fn crm() -> &'static Crm {
    static S: OnceLock<Crm> = OnceLock::new();
    S.get_or_init(|| {
        let dir = data_dir("responses");
        let toml = format!(
            "serve = [\"{CHAT}\", \"multilingual-e5-small\"]\n\
             [cache]\npreload = [\"{CHAT}\", \"multilingual-e5-small\"]\n\
             [data]\ndir = \"{}\"\n",
            dir.display()
        );
        let server = OwnedServer::start("responses", &toml);
        let base = server.base.clone();
        let (store, files) = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let store = create_store(&base, "crm").await;
                let mut files = HashSet::new();
                for (name, text) in DOCS {
                    let id = upload_ok(&base, name, text.as_bytes()).await;
                    attach(&base, &store, &id, json!({})).await;
                    let done = wait_file(&base, &store, &id).await;
                    assert_eq!(done["status"], "completed", "{done}");
                    files.insert(id);
                }
                (store, files)
            })
        })
        .join()
        .unwrap();
        Crm {
            server,
            store,
            files,
        }
    })
}

fn ask(question: &str, store: &str) -> Value {
    json!({
        "model": CHAT,
        "input": question,
        "instructions": "Answer in one short sentence.",
        "max_output_tokens": 64,
        "temperature": 0,
        "tools": [{"type": "file_search", "vector_store_ids": [store], "max_num_results": 3}],
        "include": ["file_search_call.results"],
    })
}

/// The message item's text and annotations; asserts each annotation cites a file of the store
/// at a character position inside the text.
fn check_message(c: &Crm, message: &Value) -> (String, Vec<Value>) {
    assert_eq!(message["type"], "message", "{message}");
    assert_eq!(message["role"], "assistant");
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    let part = &message["content"][0];
    assert_eq!(part["type"], "output_text", "{message}");
    let text = part["text"].as_str().unwrap().to_owned();
    let annotations = part["annotations"].as_array().unwrap().clone();
    assert!(
        !annotations.is_empty(),
        "every answer from sources is cited: {message}"
    );
    for a in &annotations {
        assert_eq!(a["type"], "file_citation", "{a}");
        assert!(c.files.contains(a["file_id"].as_str().unwrap()), "{a}");
        assert!(a["filename"].as_str().unwrap().ends_with(".txt"), "{a}");
        assert!(
            a["index"].as_u64().unwrap() as usize <= text.chars().count(),
            "{a}"
        );
    }
    (text, annotations)
}

/// `completed`, or `incomplete` when `max_output_tokens` cut the answer (a small model may
/// ramble); the message item's status follows.
fn check_status(response: &Value) {
    let status = response["status"].as_str().unwrap();
    match status {
        "completed" => assert!(response["incomplete_details"].is_null(), "{response}"),
        "incomplete" => assert_eq!(
            response["incomplete_details"]["reason"], "max_output_tokens",
            "{response}"
        ),
        other => panic!("status {other}: {response}"),
    }
    let output = response["output"].as_array().unwrap();
    assert_eq!(output.last().unwrap()["status"], status, "{response}");
}

#[tokio::test]
async fn file_search_answers_with_cited_files() {
    let c = crm();
    let question = "Khách hàng Nguyễn Văn An sống ở đâu?";
    let (status, body) = post_json(&c.server.base, "/v1/responses", ask(question, &c.store)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("resp_"), "{body}");
    assert_eq!(body["object"], "response");
    check_status(&body);
    assert_eq!(body["model"], CHAT);
    assert_eq!(body["store"], true);
    assert_eq!(body["tools"][0]["type"], "file_search");
    assert_eq!(body["max_output_tokens"], 64);
    assert!(body["error"].is_null());
    let output = body["output"].as_array().unwrap();
    assert_eq!(output.len(), 2, "{body}");
    let call = &output[0];
    assert_eq!(call["type"], "file_search_call");
    assert_eq!(call["status"], "completed");
    assert!(call["id"].as_str().unwrap().starts_with("fs_"));
    assert_eq!(call["queries"], json!([question]));
    let results = call["results"].as_array().unwrap();
    assert!(!results.is_empty() && results.len() <= 3, "{call}");
    assert_eq!(results[0]["filename"], "customer-an.txt", "{call}");
    assert!(results[0]["text"].as_str().unwrap().contains("Hà Nội"));
    for r in results {
        assert!(c.files.contains(r["file_id"].as_str().unwrap()));
        assert!(r["score"].as_f64().unwrap() > 0.0);
    }
    check_message(c, &output[1]);
    let usage = &body["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
    assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 0);
    assert!(usage["input_tokens_details"]["cached_tokens"].is_u64());

    // Without `include`, the call's results are null.
    let mut plain = ask("Who owns deal D-311?", &c.store);
    plain.as_object_mut().unwrap().remove("include");
    let (status, body) = post_json(&c.server.base, "/v1/responses", plain).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["output"][0]["results"].is_null(), "{body}");
    check_message(c, &body["output"][1]);
}

/// The `(event, data)` pairs of an SSE body.
async fn events(res: reqwest::Response) -> Vec<(String, Value)> {
    let text = res.text().await.unwrap();
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .filter_map(|block| {
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(d).unwrap());
                }
            }
            Some((event?, data?))
        })
        .collect()
}

#[tokio::test]
async fn streamed_events_come_in_order_with_sequence_numbers() {
    let c = crm();
    let mut body = ask(
        "When was invoice 1234 paid, and was a reminder sent?",
        &c.store,
    );
    body["stream"] = json!(true);
    let res = client()
        .post(format!("{}/v1/responses", c.server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = events(res).await;
    for (i, (event, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], event.as_str(), "{data}");
        assert_eq!(data["sequence_number"], i, "{data}");
    }
    let mut kinds: Vec<&str> = events
        .iter()
        .map(|(e, _)| match e.as_str() {
            // A small model may be cut by max_output_tokens: the same order, ending incomplete.
            "response.incomplete" => "response.completed",
            e => e,
        })
        .collect();
    kinds.dedup_by(|a, b| {
        a == b
            && (*a == "response.output_text.delta" || *a == "response.output_text.annotation.added")
    });
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.file_search_call.in_progress",
            "response.file_search_call.searching",
            "response.file_search_call.completed",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.annotation.added",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let of = |kind: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|(e, _)| e == kind)
            .map(|(_, d)| d)
            .collect()
    };
    let created = &of("response.created")[0]["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    let deltas: String = of("response.output_text.delta")
        .iter()
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    let done = of("response.output_text.done")[0];
    assert_eq!(done["text"].as_str().unwrap(), deltas);
    let last = &events.last().unwrap().1;
    let completed = &last["response"];
    assert_eq!(completed["id"], created["id"]);
    assert_eq!(
        last["type"],
        format!("response.{}", completed["status"].as_str().unwrap())
    );
    check_status(completed);
    assert_eq!(completed["output"][0]["type"], "file_search_call");
    assert!(
        !completed["output"][0]["results"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (text, annotations) = check_message(c, &completed["output"][1]);
    assert_eq!(text, deltas);
    let added: Vec<Value> = of("response.output_text.annotation.added")
        .iter()
        .map(|d| d["annotation"].clone())
        .collect();
    assert_eq!(added, annotations);
    let item_id = completed["output"][1]["id"].clone();
    for d in of("response.output_text.delta") {
        assert_eq!(d["item_id"], item_id);
        assert_eq!(
            (d["output_index"].as_u64(), d["content_index"].as_u64()),
            (Some(1), Some(0))
        );
    }
    assert!(completed["usage"]["output_tokens"].as_u64().unwrap() > 0);

    // The streamed response was stored as completed.
    let id = completed["id"].as_str().unwrap();
    let (status, stored) = get_json(&c.server.base, &format!("/v1/responses/{id}")).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(&stored, completed);
}

#[tokio::test]
async fn stored_responses_continue_and_delete() {
    let c = crm();
    let (status, first) = post_json(
        &c.server.base,
        "/v1/responses",
        ask("What is deal D-311 worth?", &c.store),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let id = first["id"].as_str().unwrap();
    let (status, got) = get_json(&c.server.base, &format!("/v1/responses/{id}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, first);

    let mut next = ask("And when does it close?", &c.store);
    next["previous_response_id"] = json!(id);
    let (status, second) = post_json(&c.server.base, "/v1/responses", next).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["previous_response_id"], id);
    assert!(
        second["usage"]["input_tokens"].as_u64() > first["usage"]["input_tokens"].as_u64(),
        "the earlier turn is in the prompt: {} vs {}",
        second["usage"],
        first["usage"]
    );

    let (status, deleted) = delete(&c.server.base, &format!("/v1/responses/{id}")).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted,
        json!({"id": id, "object": "response.deleted", "deleted": true})
    );
    let (status, body) = get_json(&c.server.base, &format!("/v1/responses/{id}")).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = delete(&c.server.base, &format!("/v1/responses/{id}")).await;
    assert_eq!(status, 404);
    let mut after = ask("Again?", &c.store);
    after["previous_response_id"] = json!(id);
    let (status, body) = post_json(&c.server.base, "/v1/responses", after).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "previous_response_id");

    let mut unstored = ask("Who owns deal D-311?", &c.store);
    unstored["store"] = json!(false);
    let (status, body) = post_json(&c.server.base, "/v1/responses", unstored).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["store"], false);
    let id = body["id"].as_str().unwrap();
    let (status, _) = get_json(&c.server.base, &format!("/v1/responses/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = get_json(&c.server.base, "/v1/responses/../../etc/passwd").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_requests_name_their_field() {
    let c = crm();
    let base = &c.server.base;
    let (status, body) = post_json(base, "/v1/responses", ask("q", "vs_nope")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["error"]["param"], "tools[0].vector_store_ids",
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("vs_nope"),
        "{body}"
    );

    let mut web = ask("q", &c.store);
    web["tools"] = json!([{"type": "web_search_preview"}]);
    let (status, body) = post_json(base, "/v1/responses", web).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "tools[0].type", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("web_search_preview")
    );

    let mut embedder = ask("q", &c.store);
    embedder["model"] = json!("multilingual-e5-small");
    let (status, body) = post_json(base, "/v1/responses", embedder).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "model", "{body}");

    let mut unknown = ask("q", &c.store);
    unknown["frobnicate"] = json!(true);
    let (status, body) = post_json(base, "/v1/responses", unknown).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "frobnicate", "{body}");
    assert_eq!(body["error"]["code"], "unknown_parameter", "{body}");

    let mut reasoning = ask("q", &c.store);
    reasoning["reasoning"] = json!({"effort": "high"});
    let (status, body) = post_json(base, "/v1/responses", reasoning).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "reasoning", "{body}");

    let (status, body) = post_json(base, "/v1/responses", json!({"model": CHAT})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "input", "{body}");

    let (status, body) = post_json(
        base,
        "/v1/responses",
        json!({"model": "no-such-model", "input": "q"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
}

/// A streamed request is checked before its stream starts (a missing store, a malformed
/// filter: 4xx answers); a search that fails once running (a filter on an attribute the store
/// does not have) ends the stream with the search item `failed`, `error` naming the field,
/// and `response.failed`.
#[tokio::test]
async fn streamed_search_failures() {
    let c = crm();
    let base = &c.server.base;
    let streamed = |store: &str, filters: Value| {
        let mut body = ask("Invoice 1234?", store);
        body["stream"] = json!(true);
        body["tools"][0]["filters"] = filters;
        body
    };
    let (status, body) = post_json(base, "/v1/responses", streamed("vs_nope", Value::Null)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["param"], "tools[0].vector_store_ids");

    let malformed = json!({"type": "between", "key": "region", "value": 1});
    let (status, body) = post_json(base, "/v1/responses", streamed(&c.store, malformed)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "tools[0].filters", "{body}");

    let unknown = json!({"type": "eq", "key": "no_such_attribute", "value": "x"});
    let res = client()
        .post(format!("{base}/v1/responses"))
        .json(&streamed(&c.store, unknown))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let events = events(res).await;
    let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.file_search_call.in_progress",
            "response.file_search_call.searching",
            "response.output_item.done",
            "error",
            "response.failed",
        ]
    );
    assert_eq!(events[5].1["item"]["status"], "failed", "{:?}", events[5]);
    assert_eq!(events[6].1["param"], "tools[0].filters", "{:?}", events[6]);
    assert!(
        events[6].1["message"]
            .as_str()
            .unwrap()
            .contains("no_such_attribute"),
        "{:?}",
        events[6]
    );
    let failed = &events[7].1["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["output"][0]["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], events[6].1["code"]);
}

#[tokio::test]
async fn another_keys_response_is_not_found() {
    use super::auth_support::{ADMIN, args, create_key, get, post};
    let dir = tempfile::tempdir().unwrap();
    let s = crate::common::start_with(args(dir.path(), &[CHAT]));
    let secret = |key: Value| key["secret"].as_str().unwrap().to_owned();
    let a = secret(create_key(&s, json!({"name": "a"})).await);
    let b = secret(create_key(&s, json!({"name": "b"})).await);
    let body = json!({"model": CHAT, "input": "Hi", "max_output_tokens": 4, "temperature": 0});
    let res = post(&s, "/v1/responses", &a, body).await;
    assert_eq!(res.status(), 200);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["output"][0]["type"], "message", "{created}");
    let path = format!("/v1/responses/{}", created["id"].as_str().unwrap());
    assert_eq!(get(&s, &path, Some(&b)).await.status(), 404);
    assert_eq!(get(&s, &path, Some(&a)).await.status(), 200);
    assert_eq!(get(&s, &path, Some(ADMIN)).await.status(), 200);
    let mut next = json!({"model": CHAT, "input": "And?", "max_output_tokens": 4});
    next["previous_response_id"] = created["id"].clone();
    let res = post(&s, "/v1/responses", &b, next).await;
    assert_eq!(res.status(), 400, "another key cannot continue it");
    let del = |token: String| {
        client()
            .delete(format!("{}{path}", s.base))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(del(b).await.unwrap().status(), 404);
    assert_eq!(del(a.clone()).await.unwrap().status(), 200);
    assert_eq!(get(&s, &path, Some(&a)).await.status(), 404);
}
