//! Helpers of the upstream and Ollama tests: nfai apps with a given config file on port 0, and
//! small axum servers on port 0 that play upstreams (well-behaved or misbehaving).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use nfai_router::Config;

use crate::common::Server;

/// Starts an nfai app whose config file is `toml`, on its own runtime thread.
pub fn start_with_config(name: &str, toml: &str) -> Server {
    crate::common::start_with(crate::common::config_args(name, toml))
}

/// Config errors surface from `Config::from_serve_args`.
pub fn config_error(name: &str, toml: &str) -> String {
    format!(
        "{:#}",
        Config::from_serve_args(&crate::common::config_args(name, toml)).unwrap_err()
    )
}

/// A fake upstream: its base URL, the requests it received, and its server task.
pub struct Fake {
    pub base: String,
    pub hits: Arc<AtomicUsize>,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Fake {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops the server: idle connections close and the port refuses new ones.
    pub async fn kill(mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task).await;
    }
}

/// Serves `router` on 127.0.0.1:0, counting POST requests (the residency poll's GETs aside).
pub async fn serve(router: Router) -> Fake {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            if req.method() == axum::http::Method::POST {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            async move { next.run(req).await }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (kill, killed) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = killed.await;
            })
            .await;
    });
    Fake {
        base: format!("http://{addr}"),
        hits,
        kill: Some(kill),
        task,
    }
}

/// A URL nothing listens on (connection refused).
pub async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// An OpenAI-compatible upstream answering `tokens` as chat chunks, or as one answer when the
/// request says `"stream": false`; with `break_after`, the connection is cut after that many
/// tokens (at once for a whole answer).
pub fn openai_tokens(tokens: &'static [&'static str], break_after: Option<usize>) -> Router {
    use axum::body::{Body, Bytes};
    use axum::routing::post;
    let handler = move |axum::Json(req): axum::Json<serde_json::Value>| async move {
        if req["stream"] != true {
            if break_after.is_some() {
                let cut = futures::stream::iter([Err::<Bytes, _>(std::io::Error::other("cut"))]);
                return axum::response::Response::new(Body::from_stream(cut));
            }
            let whole = serde_json::json!({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": tokens.concat()}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": tokens.len(), "total_tokens": 5 + tokens.len()}});
            return axum::response::IntoResponse::into_response(axum::Json(whole));
        }
        let mut chunks: Vec<Result<Bytes, std::io::Error>> = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            if break_after == Some(i) {
                chunks.push(Err(std::io::Error::other("upstream cut the stream")));
                break;
            }
            let c = serde_json::json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}]});
            chunks.push(Ok(Bytes::from(format!("data: {c}\n\n"))));
        }
        if break_after.is_none() {
            let fin = serde_json::json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
            let usage = serde_json::json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": tokens.len(), "total_tokens": 5 + tokens.len()}});
            chunks.push(Ok(Bytes::from(format!(
                "data: {fin}\n\ndata: {usage}\n\ndata: [DONE]\n\n"
            ))));
        }
        let body = futures::stream::iter(chunks).then(|c| async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            c
        });
        axum::response::Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(body))
            .unwrap()
    };
    Router::new().route("/v1/chat/completions", post(handler))
}

/// An upstream that accepts every request and never answers.
pub fn hang() -> Router {
    Router::new().fallback(|| async {
        std::future::pending::<()>().await;
        ""
    })
}

/// An upstream that answers every request with `status` and an OpenAI error body.
pub fn failing(status: u16) -> Router {
    Router::new().fallback(move || async move {
        let s = axum::http::StatusCode::from_u16(status).unwrap();
        (s, axum::Json(serde_json::json!({"error": {"message": "the upstream is failing", "type": "server_error"}})))
    })
}

/// An Ollama node with `model` resident whose chat answers are its `label`.
pub fn ollama_node(label: &'static str, model: &'static str) -> Router {
    use axum::routing::{get, post};
    Router::new()
        .route(
            "/api/ps",
            get(move || async move { axum::Json(serde_json::json!({"models": [{"name": model, "model": model}]})) }),
        )
        .route(
            "/api/chat",
            post(move |axum::Json(req): axum::Json<serde_json::Value>| async move {
                let end = |content: &str| serde_json::json!({"model": model, "created_at": "2023-08-04T19:22:45.499127Z",
                    "message": {"role": "assistant", "content": content}, "done": true, "done_reason": "stop",
                    "prompt_eval_count": 3, "eval_count": 1});
                if req["stream"] == false {
                    return ([("content-type", "application/json")], end(label).to_string());
                }
                let a = serde_json::json!({"model": model, "created_at": "2023-08-04T08:52:19.385406455-07:00",
                    "message": {"role": "assistant", "content": label}, "done": false});
                ([("content-type", "application/x-ndjson")], format!("{a}\n{}\n", end("")))
            }),
        )
}

/// The request bodies a fake upstream received, in order.
pub type Seen = Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// The call the tool-calling fakes answer with, and the text they answer otherwise.
pub const FAKE_CALL: &str = "get_order";
pub const FAKE_TEXT: &str = "{\"name\":\"Ann\"}";

/// An OpenAI-compatible upstream that records each chat body in `seen` and answers a request
/// with `tools` by calling [`FAKE_CALL`] with `{"order_id": 4521}` (streamed as argument deltas
/// when asked to stream), and any other with [`FAKE_TEXT`].
pub fn openai_tool_node(seen: Seen) -> Router {
    use axum::body::Body;
    use axum::response::IntoResponse;
    use serde_json::json;
    let handler = move |axum::Json(req): axum::Json<serde_json::Value>| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(req.clone());
            let calls = req.get("tools").is_some();
            let usage = json!({"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13});
            if req["stream"] != true {
                let message = if calls {
                    json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_up", "type": "function",
                        "function": {"name": FAKE_CALL, "arguments": "{\"order_id\":4521}"}}]})
                } else {
                    json!({"role": "assistant", "content": FAKE_TEXT})
                };
                let reason = if calls { "tool_calls" } else { "stop" };
                return axum::Json(json!({"id": "x", "object": "chat.completion", "created": 0, "model": "up",
                    "choices": [{"index": 0, "message": message, "finish_reason": reason}], "usage": usage}))
                .into_response();
            }
            let chunk = |delta: serde_json::Value, reason: Option<&str>| {
                let c = json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "up",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]});
                format!("data: {c}\n\n")
            };
            let mut body = chunk(json!({"role": "assistant", "content": ""}), None);
            if calls {
                let arg =
                    |a: &str| json!({"tool_calls": [{"index": 0, "function": {"arguments": a}}]});
                body += &chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_up", "type": "function",
                    "function": {"name": FAKE_CALL, "arguments": ""}}]}),
                    None,
                );
                body += &chunk(arg("{\"order_id\":"), None);
                body += &chunk(arg("4521}"), None);
                body += &chunk(json!({}), Some("tool_calls"));
            } else {
                body += &chunk(json!({"content": FAKE_TEXT}), None);
                body += &chunk(json!({}), Some("stop"));
            }
            let last = json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "up",
                "choices": [], "usage": usage});
            body += &format!("data: {last}\n\ndata: [DONE]\n\n");
            axum::response::Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from(body))
                .unwrap()
        }
    };
    Router::new().route("/v1/chat/completions", axum::routing::post(handler))
}

/// An Ollama node that records each `/api/chat` body in `seen` and answers like
/// [`openai_tool_node`], in `message.tool_calls` (arguments as an object), streamed or not.
pub fn ollama_tool_node(seen: Seen) -> Router {
    use serde_json::json;
    let handler = move |axum::Json(req): axum::Json<serde_json::Value>| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(req.clone());
            let message = if req.get("tools").is_some() {
                json!({"role": "assistant", "content": "", "tool_calls": [{"function": {"name": FAKE_CALL, "arguments": {"order_id": 4521}}}]})
            } else {
                json!({"role": "assistant", "content": FAKE_TEXT})
            };
            let line = |message: serde_json::Value, done: bool| {
                let mut l = json!({"model": "llama3.2", "created_at": "2023-08-04T19:22:45.499127Z",
                    "message": message, "done": done});
                if done {
                    l["done_reason"] = json!("stop");
                    l["prompt_eval_count"] = json!(9);
                    l["eval_count"] = json!(4);
                }
                l
            };
            if req["stream"] == false {
                return (
                    [("content-type", "application/json")],
                    line(message, true).to_string(),
                );
            }
            let end = line(json!({"role": "assistant", "content": ""}), true);
            let body = format!("{}\n{end}\n", line(message, false));
            ([("content-type", "application/x-ndjson")], body)
        }
    };
    Router::new().route("/api/chat", axum::routing::post(handler))
}

use futures::StreamExt as _;
