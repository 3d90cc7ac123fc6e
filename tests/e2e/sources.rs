//! `[[retrieval.sources]]` in a running server, over the demo CRM in a scratch database of
//! the local PostgreSQL: `POST /admin/vector_stores/{id}/sync` and its progress, search with
//! `fresh: true` (a changed row is quoted as it is now, a deleted one not at all), an
//! exhausted pool answering 503 with `Retry-After`, pool metrics, and `nfai index` both
//! through the running server and on its own once the server is stopped.

use std::path::Path;
use std::time::Duration;

use nfai_router::Config;
use serde_json::{Value, json};

use super::vector_stores_support::{OwnedServer, data_dir, get_json, post_json, search};
use crate::common::{client, config_args};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const TOKEN: &str = "sources-admin-token";

/// A database of its own on the local server, dropped at the end.
pub(crate) struct ScratchDb(String);

impl ScratchDb {
    pub(crate) fn create(rt: &tokio::runtime::Runtime, tag: &str) -> Self {
        let name = format!("nfai_e2e_{tag}_{}", std::process::id());
        rt.block_on(admin_sql(&format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE); CREATE DATABASE {name}"
        )));
        Self(name)
    }

    pub(crate) fn url(&self) -> String {
        format!("{SERVER}/{}", self.0)
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Runtime::new() {
                rt.block_on(admin_sql(&format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )));
            }
        })
        .join();
    }
}

pub(crate) async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

async fn admin_sql(sql: &str) {
    let c = connect(&format!("{SERVER}/postgres")).await;
    for statement in sql.split("; ") {
        c.batch_execute(statement).await.unwrap();
    }
}

fn toml(dir: &Path, db: &ScratchDb) -> String {
    let token = dir.join("admin-token");
    std::fs::write(&token, TOKEN).unwrap();
    format!(
        "{}[admin]\ntoken_file = \"{}\"\n\
         [database]\nurl = \"{}\"\nmax_connections = 2\nwait_timeout_ms = 200\n\
         [[retrieval.sources]]\nname = \"tickets\"\nvector_store = \"crm\"\n\
         sql = \"SELECT id, subject, body, status, priority, updated_at, deleted_at FROM tickets WHERE id <= 12\"\n\
         text_columns = [\"subject\", \"body\"]\nattribute_columns = [\"status\", \"priority\"]\n\
         deleted_at_column = \"deleted_at\"\n\
         [[retrieval.sources]]\nname = \"slow\"\nvector_store = \"slow-store\"\n\
         sql = \"SELECT c.id, c.name, c.city, c.updated_at FROM customers c, pg_sleep(1) WHERE c.id <= 2\"\n\
         text_columns = [\"name\", \"city\"]\n",
        super::vector_stores_support::config(dir, 1 << 20, true).replace(
            "serve = [\"multilingual-e5-small\"]",
            "serve = [\"multilingual-e5-small\", \"smollm2-135m-instruct\"]"
        ),
        token.display(),
        db.url()
    )
}

async fn admin(method: reqwest::Method, base: &str, path: &str) -> (u16, Value) {
    let res = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Starts a sync through the admin API and waits until it ended and its rows are embedded.
async fn sync(base: &str, store: &str) -> Value {
    let (status, body) = admin(
        reqwest::Method::POST,
        base,
        &format!("/admin/vector_stores/{store}/sync"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let before = body["data"][0]["completed_syncs"].as_u64().unwrap();
    for _ in 0..600 {
        let (status, page) = admin(
            reqwest::Method::GET,
            base,
            &format!("/admin/vector_stores/{store}/sync"),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let s = &page["data"][0];
        assert_ne!(s["state"], "failed", "{page}");
        if s["completed_syncs"].as_u64().unwrap() > before
            && page["file_counts"]["in_progress"] == 0
        {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the sync of {store} did not end");
}

/// Waits until the store's sources are idle and its files embedded.
async fn sync_settled(base: &str, store: &str) {
    for _ in 0..600 {
        let (_, page) = admin(
            reqwest::Method::GET,
            base,
            &format!("/admin/vector_stores/{store}/sync"),
        )
        .await;
        if page["data"][0]["state"] == "idle" && page["file_counts"]["in_progress"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the sync of {store} did not settle");
}

async fn store_id(base: &str, name: &str) -> String {
    let (_, list) = get_json(base, "/v1/vector_stores").await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn file_text(base: &str, store: &str, file: &str) -> String {
    let (status, body) = get_json(
        base,
        &format!("/v1/vector_stores/{store}/files/{file}/content"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"][0]["text"].as_str().unwrap().to_owned()
}

fn files_of(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["file_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs `nfai index SOURCE` on a runtime of its own (ended before the data is used again).
fn index(toml: &str, source: &str) -> anyhow::Result<()> {
    let config = Config::from_serve_args(&config_args("sources-index", toml)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(nfai_router::index_cli::run(config, Some(source.to_owned())));
    drop(rt);
    result
}

#[test]
fn sources_sync_on_request_read_fresh_rows_and_index_from_the_cli() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = ScratchDb::create(&rt, "sources");
    rt.block_on(async {
        let c = connect(&db.url()).await;
        nfai_crm_demo::load(&c, 1_000, 7, false, |_, _, _| {})
            .await
            .unwrap();
    });
    let dir = data_dir("sources");
    let toml = toml(&dir, &db);
    let server = OwnedServer::start("sources", &toml);
    let base = server.base.clone();
    rt.block_on(async {
        // No source writes to an unknown store.
        let (status, body) = admin(
            reqwest::Method::POST,
            &base,
            "/admin/vector_stores/nope/sync",
        )
        .await;
        assert_eq!(status, 404, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("nope"));

        let page = sync(&base, "crm").await;
        assert_eq!(page["data"][0]["upserted"], 12, "{page}");
        assert_eq!(page["file_counts"]["completed"], 12, "{page}");
        let crm = store_id(&base, "crm").await;
        let text = file_text(&base, &crm, "tickets:2").await;

        // The row changes in the database; the index does not know yet.
        let c = connect(&db.url()).await;
        c.batch_execute(
            "UPDATE tickets SET body = body || ' Cập nhật: khách đã nhận hàng đủ.' WHERE id = 3; \
             UPDATE tickets SET subject = 'Yêu cầu hoàn tiền cho đơn hàng lỗi' WHERE id = 5; \
             UPDATE tickets SET deleted_at = now() WHERE id = 4",
        )
        .await
        .unwrap();
        let old4 = file_text(&base, &crm, "tickets:4").await;
        let old5 = file_text(&base, &crm, "tickets:5").await;
        let (_, stale) = search(&base, &crm, json!({ "query": old4, "max_num_results": 3 })).await;
        assert!(
            files_of(&stale).contains(&"tickets:4".to_owned()),
            "{stale}"
        );
        // file_search with fresh: true quotes the row as it is now, and leaves the deleted
        // one out; a `fresh` that is not a boolean is refused by name.
        let ask = |fresh: Value| {
            json!({
                "model": "smollm2-135m-instruct", "input": old5, "max_output_tokens": 8,
                "include": ["file_search_call.results"],
                "tools": [{"type": "file_search", "vector_store_ids": [crm],
                           "max_num_results": 4, "fresh": fresh}],
            })
        };
        let (status, body) = post_json(&base, "/v1/responses", ask(json!("yes"))).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["param"], "tools[0].fresh", "{body}");
        let (status, answer) = post_json(&base, "/v1/responses", ask(json!(true))).await;
        assert_eq!(status, 200, "{answer}");
        let results = answer["output"][0]["results"].as_array().unwrap();
        let five = results
            .iter()
            .find(|r| r["file_id"] == "tickets:5")
            .unwrap();
        assert!(
            five["text"].as_str().unwrap().contains("Yêu cầu hoàn tiền"),
            "{answer}"
        );
        assert!(
            !results.iter().any(|r| r["file_id"] == "tickets:4"),
            "{answer}"
        );
        // The stale hits asked the source to sync: let it end before searching again.
        sync_settled(&base, "crm").await;

        // A fresh search: the deleted row is left out, the changed one quoted as it is.
        let (status, fresh) = search(
            &base,
            &crm,
            json!({ "query": [old5, old4], "max_num_results": 4, "fresh": true }),
        )
        .await;
        assert_eq!(status, 200, "{fresh}");
        let files = files_of(&fresh);
        assert!(!files.contains(&"tickets:4".to_owned()), "{fresh}");
        let at = files.iter().position(|f| f == "tickets:5").unwrap();
        let quoted = fresh["data"][at]["content"][0]["text"].as_str().unwrap();
        assert!(quoted.contains("Yêu cầu hoàn tiền"), "{quoted}");
        // An unchanged hit is quoted as indexed.
        let (_, same) = search(
            &base,
            &crm,
            json!({ "query": text, "max_num_results": 1, "fresh": true }),
        )
        .await;
        assert_eq!(files_of(&same), ["tickets:2"], "{same}");
        assert_eq!(same["data"][0]["content"][0]["text"], text.as_str());

        // Two connections, each fresh read of `slow` holding one for a second: a third
        // concurrent search waits 200 ms, then gets 503 with Retry-After and the cause.
        sync(&base, "slow-store").await;
        let slow = store_id(&base, "slow-store").await;
        let searches = (0..3).map(|_| {
            let (base, slow) = (base.clone(), slow.clone());
            tokio::spawn(async move {
                let res = client()
                    .post(format!("{base}/v1/vector_stores/{slow}/search"))
                    .json(&json!({ "query": "khách hàng", "fresh": true }))
                    .send()
                    .await
                    .unwrap();
                let retry = res.headers().get("retry-after").cloned();
                (res.status().as_u16(), retry, res.text().await.unwrap())
            })
        });
        let results = futures::future::join_all(searches).await;
        let refused: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().unwrap())
            .filter(|r| r.0 == 503)
            .collect();
        assert!(!refused.is_empty(), "{results:?}");
        assert!(refused[0].1.is_some(), "{refused:?}");
        assert!(refused[0].2.contains("pool exhausted"), "{refused:?}");
        let metrics = client()
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.lines().any(|l| l
                .starts_with("nfai_db_pool_exhausted_total{pool=\"default\"}")
                && !l.ends_with(" 0")),
            "{metrics}"
        );
    });

    // `nfai index` while the server runs goes through its admin API.
    rt.block_on(async {
        let c = connect(&db.url()).await;
        c.batch_execute("UPDATE tickets SET body = 'Máy in đã được thay mới.' WHERE id = 6")
            .await
            .unwrap();
    });
    std::thread::scope(|s| s.spawn(|| index(&toml, "tickets").unwrap()).join().unwrap());
    rt.block_on(async {
        let crm = store_id(&base, "crm").await;
        assert!(
            file_text(&base, &crm, "tickets:6")
                .await
                .contains("thay mới")
        );
        let (_, page) = admin(reqwest::Method::GET, &base, "/admin/sources").await;
        assert_eq!(page["data"].as_array().unwrap().len(), 2, "{page}");
    });
    server.stop();

    // With no server on the data directory, `nfai index` syncs on its own.
    rt.block_on(async {
        let c = connect(&db.url()).await;
        c.batch_execute("UPDATE tickets SET body = 'Đã hoàn tiền cho khách.' WHERE id = 7")
            .await
            .unwrap();
    });
    std::thread::scope(|s| s.spawn(|| index(&toml, "tickets").unwrap()).join().unwrap());
    let err = std::thread::scope(|s| {
        s.spawn(|| index(&toml, "nope").unwrap_err())
            .join()
            .unwrap()
    });
    assert!(err.to_string().contains("no source named `nope`"), "{err}");
    let server = OwnedServer::start("sources-2", &toml);
    rt.block_on(async {
        let crm = store_id(&server.base, "crm").await;
        assert!(
            file_text(&server.base, &crm, "tickets:7")
                .await
                .contains("hoàn tiền")
        );
        assert!(
            file_text(&server.base, &crm, "tickets:6")
                .await
                .contains("thay mới")
        );
    });
    server.stop();
}
