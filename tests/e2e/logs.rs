//! Access lines: one JSON line per request with its id, model, status, tokens and timings;
//! no prompt, output or secret unless `[logging] log_bodies` asks for bodies.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nfai_router::config::reserved::LogFormat;
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::common::*;

/// Every line the process logs (JSON), from the first call on.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(buf.clone());
        tracing_subscriber::registry()
            .with(nfai_router::logging::layer_to(LogFormat::Json, move || {
                sink.clone()
            }))
            .with(tracing_subscriber::EnvFilter::new("info"))
            .try_init()
            .expect("the logs test installs the only subscriber");
        buf
    })
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The access line of request `id`, waiting for it (it is written when the body has gone).
async fn access_line(id: &str) -> (Value, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = String::from_utf8_lossy(&captured().lock().unwrap()).into_owned();
        let found = all.lines().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["target"] == "nfai::access" && v["request_id"] == id).then_some(v)
        });
        if let Some(v) = found {
            return (v, all);
        }
        assert!(Instant::now() < deadline, "no access line for {id}:\n{all}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const PROMPT: &str = "Reply to Nguyen Van An about invoice 8841.";
const SECRET: &str = "Bearer sk-logs-test-do-not-print";

async fn chat(s: &Server, id: &str) -> Value {
    let res = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .header("x-request-id", id)
        .header("authorization", SECRET)
        .json(&greedy_chat(PROMPT, 4))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-request-id"], id);
    res.json().await.unwrap()
}

#[tokio::test]
async fn each_request_has_one_json_access_line_without_bodies_or_secrets() {
    captured();
    let s = server();
    let body = chat(s, "logs-test-plain").await;
    let (line, all) = access_line("logs-test-plain").await;
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], "/v1/chat/completions");
    assert_eq!(line["model"], "smollm2-135m-instruct");
    assert_eq!(line["status"], 200);
    assert_eq!(line["prompt_tokens"], body["usage"]["prompt_tokens"]);
    assert_eq!(
        line["completion_tokens"],
        body["usage"]["completion_tokens"]
    );
    assert_eq!(line["complete"], true);
    assert!(line["duration_ms"].as_f64().unwrap() >= line["ttft_ms"].as_f64().unwrap());
    assert!(line.get("request_body").is_none());
    let answer = body["choices"][0]["message"]["content"].as_str().unwrap();
    // The log-bodies test shares the log and logs its own request's body: leave its lines out.
    let all: String = all
        .lines()
        .filter(|l| !l.contains("logs-test-bodies"))
        .collect::<Vec<_>>()
        .join("\n");
    for hidden in [PROMPT, "sk-logs-test"] {
        assert!(!all.contains(hidden), "{hidden:?} was logged");
    }
    if !answer.trim().is_empty() {
        assert!(!all.contains(answer), "the output was logged");
    }
    let count = all
        .lines()
        .filter(|l| l.contains("\"request_id\":\"logs-test-plain\""))
        .count();
    assert_eq!(count, 1, "one access line per request");

    let res = client()
        .get(format!("{}/no/such/route", s.base))
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let (line, _) = access_line(&id).await;
    assert_eq!(
        (line["status"].as_u64(), line["route"].as_str()),
        (Some(404), Some("other"))
    );
}

#[tokio::test]
async fn log_bodies_adds_the_request_and_response_bodies() {
    captured();
    let s = start_with(config_args(
        "log-bodies",
        "serve = [\"smollm2-135m-instruct\"]\n[logging]\nlog_bodies = true\n",
    ));
    let body = chat(&s, "logs-test-bodies").await;
    let (line, all) = access_line("logs-test-bodies").await;
    assert!(line["request_body"].as_str().unwrap().contains(PROMPT));
    let logged: Value = serde_json::from_str(line["response_body"].as_str().unwrap()).unwrap();
    assert_eq!(logged["choices"], body["choices"]);
    assert!(!all.contains("sk-logs-test"), "headers are never logged");
}

/// A request made with a key logs the key's id (never its secret); one made with the admin
/// token logs none.
#[tokio::test]
async fn the_access_line_names_the_key() {
    use crate::auth_support::{ADMIN, args, create_key, tiny_chat};
    captured();
    let dir = tempfile::tempdir().unwrap();
    let s = start_with(args(dir.path(), &["smollm2-135m-instruct"]));
    let key = create_key(&s, serde_json::json!({"name": "logged"})).await;
    let secret = key["secret"].as_str().unwrap();
    for (id, token) in [("logs-test-key", secret), ("logs-test-admin", ADMIN)] {
        let res = client()
            .post(format!("{}/v1/chat/completions", s.base))
            .header("x-request-id", id)
            .bearer_auth(token)
            .json(&tiny_chat("smollm2-135m-instruct", 2))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap();
    }
    let (line, all) = access_line("logs-test-key").await;
    assert_eq!(line["key_id"], key["id"], "{line}");
    assert!(key["id"].as_str().unwrap().starts_with("key-"), "{key}");
    assert!(!all.contains(secret), "the key's secret was logged");
    assert!(!all.contains(ADMIN), "the admin token was logged");
    let (line, _) = access_line("logs-test-admin").await;
    assert!(line.get("key_id").is_none(), "{line}");
}
