//! Two servers on one PostgreSQL database (`[database] url`), as replicas run: a file uploaded
//! to one is listed and downloaded through the other, a store made on one is seen by the
//! other, and an API key made on one (or offline with `nfai keys --database-url`) opens the
//! other within a couple of seconds, until it is revoked anywhere. Each keeps its own data
//! directory, which holds none of it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::auth::keys_cli;
use crate::common::client;
use crate::sources::{ScratchDb, connect};
use crate::vector_stores_support::{
    OwnedServer, config, create_store, data_dir, get_json, upload_ok,
};

const TOKEN: &str = "replicas-admin-token";

fn toml(name: &str, db: &ScratchDb) -> String {
    let dir = data_dir(name);
    let token = dir.join("admin-token");
    std::fs::write(&token, TOKEN).unwrap();
    format!(
        "{}[admin]\ntoken_file = \"{}\"\n[database]\nurl = \"{}\"\n",
        config(&dir, 4 << 20, false),
        token.display(),
        db.url()
    )
}

/// `GET {base}/v1/models` with `key`; its status.
async fn models_status(base: &str, key: Option<&str>) -> u16 {
    let mut req = client().get(format!("{base}/v1/models"));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Polls until `GET /v1/models` with `key` answers `want` (the keyring reloads every second).
async fn until_status(base: &str, key: Option<&str>, want: u16) {
    for _ in 0..100 {
        if models_status(base, key).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{base}/v1/models never answered {want}");
}

async fn admin(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut req = client().request(method, url).bearer_auth(TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[test]
fn replicas_on_one_database_share_files_stores_and_keys() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = ScratchDb::create(&rt, "replicas");
    let a = OwnedServer::start("replica-a", &toml("replica-a", &db));
    let b = OwnedServer::start("replica-b", &toml("replica-b", &db));
    let text = "Khách hàng Trần Thị Bình hẹn gọi lại thứ Hai về hợp đồng bảo trì.";
    rt.block_on(async {
        // A file and a store made through A, read through B.
        let file = upload_ok(&a.base, "note-vi.txt", text.as_bytes()).await;
        let (status, body) = get_json(&b.base, &format!("/v1/files/{file}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["filename"], "note-vi.txt");
        let res = client()
            .get(format!("{}/v1/files/{file}/content", b.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.bytes().await.unwrap(), text.as_bytes());
        let store = create_store(&a.base, "shared").await;
        let (status, body) = get_json(&b.base, &format!("/v1/vector_stores/{store}")).await;
        assert_eq!((status, &body["name"]), (200, &json!("shared")), "{body}");
        let c = connect(&db.url()).await;
        let rows = c
            .query_one("SELECT count(*) FROM nfai_files", &[])
            .await
            .unwrap();
        assert_eq!(rows.get::<_, i64>(0), 1, "the record is in the database");

        // Keys made on A open B; B's revocation of one closes A to it (the other key keeps
        // keys required on this loopback server).
        let mut made = Vec::new();
        for name in ["crm-backend", "reports"] {
            let (status, key) = admin(
                reqwest::Method::POST,
                format!("{}/admin/keys", a.base),
                Some(json!({ "name": name })),
            )
            .await;
            assert_eq!(status, 201, "{key}");
            made.push((
                key["id"].as_str().unwrap().to_owned(),
                key["secret"].as_str().unwrap().to_owned(),
            ));
        }
        let (id, secret) = made[0].clone();
        until_status(&b.base, None, 401).await;
        until_status(&b.base, Some(&secret), 200).await;
        until_status(&b.base, Some(&made[1].1), 200).await;
        let (status, body) = admin(
            reqwest::Method::DELETE,
            format!("{}/admin/keys/{id}", b.base),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        until_status(&a.base, Some(&secret), 401).await;
        assert_eq!(models_status(&a.base, Some(&made[1].1)).await, 200);
    });

    // A key made offline in the same database opens both.
    let out = keys_cli(&["create", "--database-url", &db.url(), "--name", "offline"]);
    let secret = out.trim().to_owned();
    assert!(secret.starts_with("nfai-"), "{out}");
    let listed = keys_cli(&["list", "--database-url", &db.url()]);
    assert!(listed.contains("offline"), "{listed}");
    rt.block_on(async {
        until_status(&a.base, Some(&secret), 200).await;
        until_status(&b.base, Some(&secret), 200).await;
    });
    a.stop();
    b.stop();
}
