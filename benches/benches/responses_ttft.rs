//! Time to first token of a grounded answer: `POST /v1/responses` with `file_search` (3
//! chunks, the default chat model, streamed, warm) over the demo CRM, beside each stage of it
//! timed on its own in the same run: embedding the question, searching the store, re-reading
//! the matching rows from PostgreSQL (`fresh: true`), and prefilling the prompt the answer is
//! generated from.
//!
//! The data: `nfai-crm-demo` with `RESPONSES_ROWS` rows (default 2,000; seed 42), indexed and
//! served as [`nfai_tests::demo::DemoCrm`] does. Each round sends, one after the other:
//! 1. `POST /v1/embeddings` of `query: <question>` with multilingual-e5-small: **embed**;
//! 2. `POST /v1/vector_stores/{id}/search` (3 results): embed + **search**;
//! 3. the same with `fresh: true`: embed + search + **fetch**;
//! 4. `POST /v1/chat/completions`, streamed, with the system prompt the Responses API builds
//!    from step 2's chunks (`responses::prompt::assemble`) and the question: **prefill**, to the
//!    first content token;
//! 5. `POST /v1/responses` with `file_search`, streamed: the whole path, to the first
//!    `response.output_text.delta`.
//!
//! Every request asks a question no earlier request asked (customer names × templates, in
//! Vietnamese and English), so no cache answers. A stage's time is the difference of the p50s of
//! the requests that include it. `RESPONSES_ROUNDS` rounds (default 30) after 3 unmeasured.
//!
//! `cargo bench -p nfai-benches --bench responses_ttft` (after `nfai models fetch`)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program stops at the first failed setup step"
)]

use std::time::{Duration, Instant};

use nfai_models::chat_template::ChatMessage;
use nfai_router::responses::prompt::{Budget, Source, assemble, estimate_tokens};
use nfai_tests::common::{Server, client, env_or};
use nfai_tests::demo::DemoCrm;
use serde_json::{Value, json};

const MODEL: &str = "default";
const EMBEDDER: &str = "multilingual-e5-small";
/// Chunks searched for and put in the prompt.
const CHUNKS: usize = 3;
/// Tokens each answer may have; only the first one is timed.
const ANSWER_TOKENS: u32 = 16;

const TEMPLATES: &[(&str, &str)] = &[
    ("en", "What problems has {} reported to us recently?"),
    ("vi", "{} đã báo lỗi gì gần đây?"),
    ("en", "Which deals are open with {}?"),
    ("vi", "Chúng ta đang có thương vụ nào với {}?"),
    ("en", "Summarise the last call or meeting with {}."),
    ("vi", "Tóm tắt cuộc gọi hoặc cuộc họp gần nhất với {}."),
];

/// Questions no request repeats (the query-embedding and result caches would answer a repeated
/// one): every distinct customer name in every template.
fn questions(names: &[String]) -> impl Iterator<Item = String> + '_ {
    TEMPLATES
        .iter()
        .flat_map(move |(_, t)| names.iter().map(move |n| t.replace("{}", n)))
}

async fn post(base: &str, path: &str, body: &Value) -> (Duration, reqwest::Response) {
    let started = Instant::now();
    let res = client()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    (started.elapsed(), res)
}

/// Time from sending until the whole answer was read.
async fn timed_json(base: &str, path: &str, body: &Value) -> (Duration, Value) {
    let started = Instant::now();
    let (_, res) = post(base, path, body).await;
    let value: Value = res.json().await.unwrap();
    (started.elapsed(), value)
}

/// Time from sending until the first SSE `data:` line for which `first` holds; the rest of the
/// stream is read and dropped.
async fn first_event(base: &str, path: &str, body: &Value, first: fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    let (_, mut res) = post(base, path, body).await;
    let (mut buf, mut at) = (String::new(), None);
    while let Some(chunk) = res.chunk().await.unwrap() {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find('\n') {
            let line: String = buf.drain(..=end).collect();
            if at.is_none()
                && let Some(data) = line.trim_end().strip_prefix("data: ")
                && serde_json::from_str::<Value>(data).is_ok_and(|v| first(&v))
            {
                at = Some(started.elapsed());
            }
        }
    }
    at.unwrap_or_else(|| panic!("{path}: no first token in the stream"))
}

fn chat_token(v: &Value) -> bool {
    v["choices"][0]["delta"]["content"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
}

fn answer_token(v: &Value) -> bool {
    v["type"] == "response.output_text.delta"
}

/// The system prompt the Responses API builds from these search results.
fn grounded_prompt(results: &Value, question: &str) -> String {
    let sources: Vec<Source> = results["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| Source {
            file_id: hit["file_id"].as_str().unwrap().to_owned(),
            filename: hit["filename"].as_str().unwrap().to_owned(),
            text: hit["content"][0]["text"].as_str().unwrap().to_owned(),
        })
        .collect();
    let conversation = [ChatMessage::new("user", question)];
    let budget = Budget {
        context_tokens: 8_192,
        output_tokens: ANSWER_TOKENS as usize,
    };
    assemble(None, &conversation, &sources, budget, estimate_tokens).system
}

#[derive(Default)]
struct Times {
    embed: Vec<f64>,
    search: Vec<f64>,
    fresh: Vec<f64>,
    prefill: Vec<f64>,
    full: Vec<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

async fn round(
    server: &Server,
    store: &str,
    next: &mut impl Iterator<Item = String>,
    times: &mut Times,
) {
    let base = &server.base;
    let q = next.next().expect("enough questions");
    let (t, _) = timed_json(
        base,
        "/v1/embeddings",
        &json!({"model": EMBEDDER, "input": format!("query: {q}")}),
    )
    .await;
    times.embed.push(ms(t));

    let q = next.next().expect("enough questions");
    let path = format!("/v1/vector_stores/{store}/search");
    let (t, results) =
        timed_json(base, &path, &json!({"query": q, "max_num_results": CHUNKS})).await;
    times.search.push(ms(t));
    let system = grounded_prompt(&results, &q);

    let q = next.next().expect("enough questions");
    let (t, _) = timed_json(
        base,
        &path,
        &json!({"query": q, "max_num_results": CHUNKS, "fresh": true}),
    )
    .await;
    times.fresh.push(ms(t));

    let q = next.next().expect("enough questions");
    let chat = json!({
        "model": MODEL,
        "stream": true,
        "max_tokens": ANSWER_TOKENS,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": q},
        ],
    });
    let t = first_event(base, "/v1/chat/completions", &chat, chat_token).await;
    times.prefill.push(ms(t));

    let q = next.next().expect("enough questions");
    let full = json!({
        "model": MODEL,
        "input": q,
        "stream": true,
        "store": false,
        "max_output_tokens": ANSWER_TOKENS,
        "tools": [{"type": "file_search", "vector_store_ids": [store], "max_num_results": CHUNKS, "fresh": true}],
    });
    let t = first_event(base, "/v1/responses", &full, answer_token).await;
    times.full.push(ms(t));
}

fn main() {
    let rows = env_or("RESPONSES_ROWS", 2_000) as u64;
    let rounds = env_or("RESPONSES_ROUNDS", 30);
    let demo = DemoCrm::start("responses", rows);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Names repeat among generated customers: each is asked about once per template.
    let names: Vec<String> = rt
        .block_on(demo.query("SELECT DISTINCT name FROM customers ORDER BY name"))
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        names.len() * TEMPLATES.len() >= (rounds + 3) * 5,
        "too few customers for distinct questions: raise RESPONSES_ROWS"
    );
    let times = rt.block_on(async {
        let mut next = questions(&names);
        let mut warm = Times::default();
        for _ in 0..3 {
            round(&demo.server, &demo.store, &mut next, &mut warm).await;
        }
        let mut times = Times::default();
        for _ in 0..rounds {
            round(&demo.server, &demo.store, &mut next, &mut times).await;
        }
        times
    });

    println!(
        "CPU: {}; {rows} demo rows indexed in {:.1} s; {rounds} rounds, {CHUNKS} chunks, model `{MODEL}`",
        nfai_tests::fleet::cpu_model(),
        demo.indexed.as_secs_f64()
    );
    println!("| request | p50 ms | p95 ms |");
    println!("|---|---:|---:|");
    let rows_out: [(&str, &[f64]); 5] = [
        ("embeddings (embed)", &times.embed),
        ("store search (embed + search)", &times.search),
        ("store search, fresh (embed + search + fetch)", &times.fresh),
        ("chat, streamed, to first token (prefill)", &times.prefill),
        (
            "responses + file_search, streamed, to first token",
            &times.full,
        ),
    ];
    for (name, v) in rows_out {
        println!(
            "| {name} | {:.1} | {:.1} |",
            quantile(v, 0.5),
            quantile(v, 0.95)
        );
    }
    let p50 = |v: &[f64]| quantile(v, 0.5);
    let embed = p50(&times.embed);
    let search = p50(&times.search) - embed;
    let fetch = p50(&times.fresh) - p50(&times.search);
    let prefill = p50(&times.prefill);
    println!(
        "breakdown of p50: embed {embed:.1} + search {search:.1} + fetch {fetch:.1} + prefill {prefill:.1} = {:.1} ms; measured whole {:.1} ms",
        embed + search + fetch + prefill,
        p50(&times.full)
    );
    demo.finish();
}
