//! Helpers of the vector store tests: servers with their own data directory (only
//! multilingual-e5-small served) that can be stopped and started again on the same directory,
//! multipart uploads, and polling a store file until its ingestion ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nfai_router::state::AppState;
use nfai_router::{Application, Config};
use serde_json::{Value, json};

use crate::common::{client, config_args};

/// A server on its own runtime thread, stopped by [`OwnedServer::stop`].
pub struct OwnedServer {
    pub base: String,
    state: Option<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A fresh data directory for one test.
pub fn data_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir =
        std::env::temp_dir().join(format!("nfai-e2e-{}-vs-{name}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The config of a vector store test server: e5 only, `dir` as the data directory.
pub fn config(dir: &Path, max_bytes: u64, preload_e5: bool) -> String {
    let preload = if preload_e5 {
        "[\"multilingual-e5-small\"]"
    } else {
        "[]"
    };
    format!(
        "serve = [\"multilingual-e5-small\"]\n\
         [cache]\npreload = {preload}\n\
         [data]\ndir = \"{}\"\n\
         [files]\nmax_bytes = {max_bytes}\n",
        dir.display()
    )
}

impl OwnedServer {
    /// Starts a server with the config `toml`; returns once its preloads are Ready.
    pub fn start(name: &str, toml: &str) -> Self {
        let args = config_args(name, toml);
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let built = async {
                    let config = Config::from_serve_args(&args).map_err(|e| format!("{e:#}"))?;
                    let app = Application::build(config)
                        .await
                        .map_err(|e| format!("{e:#}"))?;
                    app.wait_ready().await.map_err(|e| format!("{e:#}"))?;
                    Ok::<_, String>(app)
                };
                match built.await {
                    Ok(app) => {
                        tx.send(Ok((app.local_addr().unwrap(), app.state().clone())))
                            .unwrap();
                        app.run_until(async {
                            let _ = stopped.await;
                        })
                        .await
                        .unwrap();
                    }
                    Err(e) => tx.send(Err(e)).unwrap(),
                }
            });
            // Dropping the runtime ends every background task of the app.
            drop(rt);
        });
        match rx.recv().unwrap() {
            Ok((addr, state)) => Self {
                base: format!("http://{addr}"),
                state: Some(state),
                stop: Some(stop),
                thread: Some(thread),
            },
            Err(e) => panic!("the test server did not start: {e}"),
        }
    }

    /// The app's state.
    pub fn state(&self) -> &AppState {
        self.state.as_ref().unwrap()
    }

    /// Stops the server and waits until its runtime (and so its stores) is gone.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        drop(self.state.take());
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// `multipart/form-data` with `purpose` and one file, built by hand.
pub fn multipart(filename: &str, content_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "nfai-test-boundary-7d1f";
    let mut body = Vec::with_capacity(bytes.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n\
             --{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             content-type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Uploads a file; returns the status and body.
pub async fn upload(base: &str, filename: &str, content_type: &str, bytes: &[u8]) -> (u16, Value) {
    let (ct, body) = multipart(filename, content_type, bytes);
    let res = client()
        .post(format!("{base}/v1/files"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Uploads a file that must be accepted; returns its id.
pub async fn upload_ok(base: &str, filename: &str, bytes: &[u8]) -> String {
    let (status, body) = upload(base, filename, "text/plain", bytes).await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

pub async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut req = client().request(method, url);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text })),
    )
}

pub async fn post_json(base: &str, path: &str, body: Value) -> (u16, Value) {
    call(reqwest::Method::POST, format!("{base}{path}"), Some(body)).await
}

pub async fn get_json(base: &str, path: &str) -> (u16, Value) {
    call(reqwest::Method::GET, format!("{base}{path}"), None).await
}

pub async fn delete(base: &str, path: &str) -> (u16, Value) {
    call(reqwest::Method::DELETE, format!("{base}{path}"), None).await
}

/// Creates a store; returns its id.
pub async fn create_store(base: &str, name: &str) -> String {
    let (status, body) = post_json(base, "/v1/vector_stores", json!({ "name": name })).await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Attaches a file; returns the store file object.
pub async fn attach(base: &str, store: &str, file: &str, attributes: Value) -> Value {
    let (status, body) = post_json(
        base,
        &format!("/v1/vector_stores/{store}/files"),
        json!({ "file_id": file, "attributes": attributes }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls a store file until it is no longer `in_progress`; returns it.
pub async fn wait_file(base: &str, store: &str, file: &str) -> Value {
    loop {
        let (status, body) =
            get_json(base, &format!("/v1/vector_stores/{store}/files/{file}")).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] != "in_progress" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Searches; returns the status and body.
pub async fn search(base: &str, store: &str, body: Value) -> (u16, Value) {
    post_json(base, &format!("/v1/vector_stores/{store}/search"), body).await
}

/// The file ids and texts of a search's results, in order.
pub fn hits(body: &Value) -> Vec<(String, String)> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["file_id"].as_str().unwrap().to_owned(),
                h["content"][0]["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
