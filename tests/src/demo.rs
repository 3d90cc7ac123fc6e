//! The demo CRM served for the benchmarks that need CRM data behind a running app: a scratch
//! database of the local PostgreSQL loaded with `nfai-crm-demo` rows, indexed by `nfai index`
//! on its own (the demo's `nfai.toml`, multilingual-e5-small), then an app on port 0 serving
//! the same data directory with that config and the admin token [`ADMIN`].

use std::time::{Duration, Instant};

use nfai_router::config::Secret;
use serde_json::Value;

use crate::common::{Server, client, config_args, start_with};

/// The local server, trust authentication.
pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
/// The app's admin token.
pub const ADMIN: &str = "demo-admin-token";

/// Runs one statement on database `db` of the local server; returns its rows.
pub async fn sql(db: &str, statement: &str) -> Vec<tokio_postgres::Row> {
    let (client, conn) = tokio_postgres::connect(&format!("{SERVER}/{db}"), tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    let rows = client.query(statement, &[]).await.unwrap();
    drop(client);
    let _ = task.await;
    rows
}

/// Makes database `db` on the local server and loads `rows` demo rows (seed 42); returns its
/// URL.
pub async fn scratch(db: &str, rows: u64) -> String {
    sql("postgres", &format!("CREATE DATABASE {db}")).await;
    let url = format!("{SERVER}/{db}");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    nfai_crm_demo::load(&client, rows, 42, false, |_, _, _| {})
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    url
}

/// Drops database `db` of the local server.
pub async fn drop_db(db: &str) {
    sql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)")).await;
}

/// The demo CRM, indexed and served.
pub struct DemoCrm {
    /// The scratch database's name.
    pub db: String,
    pub server: Server,
    /// The id of the demo's store `crm`.
    pub store: String,
    /// How long `nfai index` took.
    pub indexed: Duration,
    data: tempfile::TempDir,
}

impl DemoCrm {
    /// Loads `rows` demo rows (seed 42) into a scratch database named after `tag`, indexes
    /// them and starts the app; returns once the app's start-up sync has settled.
    pub fn start(tag: &str, rows: u64) -> Self {
        let db = format!("nfai_bench_{tag}_{}", std::process::id());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let url = rt.block_on(scratch(&db, rows));
        let data = tempfile::tempdir().unwrap();
        let mut args = config_args(
            &format!("demo-{tag}-{}", std::process::id()),
            nfai_crm_demo::NFAI_TOML,
        );
        args.data_dir = Some(data.path().join("data"));
        args.database_url = Some(Secret::new(url));
        args.admin_token = Some(Secret::new(ADMIN.to_owned()));
        if let Some(models) = std::env::var_os("NFAI_MODEL_DIR") {
            args.common.model_dir = Some(models.into());
        }
        let started = Instant::now();
        let config = nfai_router::Config::from_serve_args(&args).unwrap();
        // A runtime of its own: its tasks (and the stores they hold open) end with it, before
        // the app opens the same data directory.
        let index_rt = tokio::runtime::Runtime::new().unwrap();
        index_rt
            .block_on(nfai_router::index_cli::run(config, None))
            .unwrap();
        drop(index_rt);
        let indexed = started.elapsed();
        let server = start_with(args);
        let store = rt.block_on(async {
            let list = get(&server.base, "/v1/vector_stores").await;
            let store = list["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == "crm")
                .expect("the demo's store `crm`")["id"]
                .as_str()
                .unwrap()
                .to_owned();
            settled(&server.base, &store).await;
            store
        });
        Self {
            db,
            server,
            store,
            indexed,
            data,
        }
    }

    /// Rows of `statement` over the demo database.
    pub async fn query(&self, statement: &str) -> Vec<tokio_postgres::Row> {
        sql(&self.db, statement).await
    }

    /// Drops the database and the data, and ends the process: the app runs on its own thread
    /// until then, and none of its destructors may run on a removed directory.
    pub fn finish(self) -> ! {
        if let Ok(rt) = tokio::runtime::Runtime::new() {
            rt.block_on(drop_db(&self.db));
        }
        let _ = std::fs::remove_dir_all(self.data.path());
        std::process::exit(0);
    }
}

async fn get(base: &str, path: &str) -> Value {
    client()
        .get(format!("{base}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until the app's start-up sync of the store is over.
async fn settled(base: &str, store: &str) {
    let mut page = Value::Null;
    for _ in 0..3_000 {
        page = get(base, &format!("/admin/vector_stores/{store}/sync")).await;
        let idle = page["data"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["state"] == "idle"));
        if idle && page["file_counts"]["in_progress"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store's sources did not settle: {page}");
}
