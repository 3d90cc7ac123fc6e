//! Load generator and minimal upstream for measuring what routing through nfai adds.
//!
//! `router_overhead upstream <port>`: an OpenAI-compatible server answering
//! `/v1/chat/completions` at once (one token; JSON or SSE) and `/v1/models`.
//! `router_overhead rate <url> <requests/s> <seconds>`: open-loop load at a fixed rate; prints
//! latency percentiles. `router_overhead max <url> <connections> <seconds>`: closed-loop load;
//! prints throughput. `STREAM=1` makes the load generator ask for streamed (SSE) answers, and
//! `BENCH_BEARER=<key>` sends that API key with every request.
//! `router_overhead proxy <port> <upstream base URL>`: a bare forwarding proxy. Used by
//! `benches/router_overhead.sh`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program stops at the first failed setup step"
)]

use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

async fn chat(Json(body): Json<Value>) -> axum::response::Response {
    if body["stream"] == true {
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let usage = json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}});
        let text = format!(
            "data: {}\n\ndata: {}\n\ndata: {usage}\n\ndata: [DONE]\n\n",
            chunk(json!({"role": "assistant", "content": "ok"}), Value::Null),
            chunk(json!({}), json!("stop"))
        );
        return ([("content-type", "text/event-stream")], text).into_response();
    }
    Json(json!({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}))
    .into_response()
}

async fn upstream(port: u16) {
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route(
            "/v1/models",
            get(|| async {
                Json(json!({"object": "list", "data": [{"id": "m", "state": "ready"}]}))
            }),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}

/// A bare forwarding proxy: each request's method, path and body go to `upstream` unchanged
/// over pooled keep-alive connections. What any proxy must spend: the floor under nfai's figures.
async fn proxy(port: u16, upstream: String) {
    use axum::body::{Body, Bytes};
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::{Client, connect::HttpConnector};
    use hyper_util::rt::TokioExecutor;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let app = Router::new().fallback(move |req: axum::extract::Request| {
        let client = client.clone();
        let upstream = upstream.clone();
        async move {
            let (parts, body) = req.into_parts();
            let Ok(bytes) = body.collect().await.map(|b| b.to_bytes()) else {
                return axum::http::StatusCode::BAD_REQUEST.into_response();
            };
            let uri = format!("{upstream}{}", parts.uri.path());
            let mut out = axum::http::Request::new(Full::new(bytes));
            *out.method_mut() = parts.method;
            *out.uri_mut() = uri.parse().unwrap();
            out.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            match client.request(out).await {
                Ok(res) => res.map(Body::new).into_response(),
                Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}

/// The request; `STREAM=1` in the environment asks for an SSE answer.
fn body() -> Value {
    let stream = std::env::var("STREAM").is_ok_and(|v| v == "1");
    json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "stream": stream})
}

/// `BENCH_BEARER` in the environment: the API key every request carries.
fn bearer() -> Option<&'static str> {
    static BEARER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BEARER
        .get_or_init(|| std::env::var("BENCH_BEARER").ok())
        .as_deref()
}

async fn one(client: &reqwest::Client, url: &str) -> Option<Duration> {
    let started = Instant::now();
    let mut req = client.post(url).json(&body());
    if let Some(key) = bearer() {
        req = req.bearer_auth(key);
    }
    let res = req.send().await.ok()?;
    let ok = res.status().is_success();
    res.bytes().await.ok()?;
    ok.then(|| started.elapsed())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

async fn rate(url: String, rps: u64, secs: u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .unwrap();
    // Warm the connection pool.
    for _ in 0..200 {
        one(&client, &url).await;
    }
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rps));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..rps * secs {
        tick.tick().await;
        let (c, u) = (client.clone(), url.clone());
        tasks.spawn(async move { one(&c, &u).await });
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        match r.ok().flatten() {
            Some(d) => lat.push(d),
            None => errors += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "rate {url}: sent {} at {rps}/s in {elapsed:.1}s, errors {errors}, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        rps * secs,
        pct(&lat, 0.5),
        pct(&lat, 0.9),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
}

async fn max(url: String, conns: usize, secs: u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let (c, u) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                if one(&c, &u).await.is_some() {
                    n += 1;
                }
            }
            n
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r.unwrap_or(0);
    }
    println!(
        "max {url}: {conns} connections, {:.0} requests/s",
        total as f64 / secs as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(1).as_str() {
        "upstream" => rt.block_on(upstream(arg(2).parse().unwrap())),
        "proxy" => rt.block_on(proxy(arg(2).parse().unwrap(), arg(3))),
        "rate" => rt.block_on(rate(
            arg(2),
            arg(3).parse().unwrap(),
            arg(4).parse().unwrap(),
        )),
        "max" => rt.block_on(max(
            arg(2),
            arg(3).parse().unwrap(),
            arg(4).parse().unwrap(),
        )),
        _ => eprintln!(
            "usage: router_overhead upstream <port> | rate <url> <rps> <secs> | max <url> <conns> <secs>"
        ),
    }
}
