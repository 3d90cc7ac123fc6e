//! Indexing the demo CRM from PostgreSQL, as `nfai index` does it with no server running:
//! `examples/crm/nfai.toml`'s four sources (customers, tickets, deals, activities) read through
//! the pool, each row written as a store file, chunked, embedded with multilingual-e5-small
//! and stored in the embedded vector store. Prints rows/s, text tokens/s (the rows' own
//! tokens) and embedded tokens/s (with `<s>`, `passage: ` and `</s>`), with the CPU model.
//!
//! The data: `nfai-crm-demo` with `SOURCE_INDEX_ROWS` rows in all (default 10,000; contacts
//! are not indexed), seed 42, in a scratch database of the local server, dropped at the end.
//! Threads: the compute pool of `NFAI_THREADS` (default every core). Files ingested at once:
//! `SOURCE_INDEX_CONCURRENCY` (default `[retrieval] ingest_concurrency`'s).
//!
//! `cargo bench -p nfai-benches --bench source_index` (after `nfai models fetch`)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program stops at the first failed setup step"
)]

use std::time::Instant;

use candle_core::Device;
use nfai_models::{E5Embedder, InputKind};
use nfai_router::Config;
use nfai_router::config::{Secret, ServeArgs};
use nfai_tests::common::env_or;
use nfai_tests::demo::{drop_db, scratch};
use nfai_tests::fleet::cpu_model;

fn main() {
    let rows = env_or("SOURCE_INDEX_ROWS", 10_000) as u64;
    let threads = std::env::var("NFAI_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    nfai_models::kernels::init_compute_pool(threads);
    let db = format!("nfai_bench_index_{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(scratch(&db, rows));
    drop(rt);

    // `[retrieval] ingest_concurrency` from `SOURCE_INDEX_CONCURRENCY`, else the default.
    let concurrency = std::env::var("SOURCE_INDEX_CONCURRENCY")
        .map(|n| format!("[retrieval]\ningest_concurrency = {n}\n"))
        .unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("nfai.toml");
    std::fs::write(
        &config_path,
        format!(
            "serve = [\"multilingual-e5-small\"]\n[cache]\npreload = []\n{concurrency}{}",
            nfai_crm_demo::NFAI_TOML
        ),
    )
    .unwrap();
    let mut args = ServeArgs {
        port: Some(0),
        no_fetch: true,
        data_dir: Some(dir.path().join("data")),
        database_url: Some(Secret::new(url.clone())),
        ..Default::default()
    };
    args.common.config = Some(config_path);
    if let Some(models) = std::env::var_os("NFAI_MODEL_DIR") {
        args.common.model_dir = Some(models.into());
    }
    let config = Config::from_serve_args(&args).unwrap();
    let model_dir = config.model_dir.clone();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    rt.block_on(nfai_router::index_cli::run(config, None))
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    drop(rt);

    // What was embedded: every store file's text, tokenized by the model's own tokenizer.
    let e5 = E5Embedder::load(
        &model_dir.join("multilingual-e5-small/e5-small-q4.bin"),
        &Device::Cpu,
    )
    .unwrap();
    let prefix = e5
        .tokenizer()
        .encode(InputKind::Passage.prefix().trim_end())
        .len() as u64;
    // The database holds nfai's own records too, the files' bytes as parts in
    // `nfai_blob_parts`.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let blobs = rt.block_on(nfai_tests::demo::sql(
        &db,
        "SELECT convert_from(string_agg(p.data, ''::bytea ORDER BY p.seq), 'UTF8') AS text \
         FROM nfai_blobs b JOIN nfai_blob_parts p ON p.upload = b.upload GROUP BY b.id",
    ));
    drop(rt);
    let texts: Vec<String> = blobs.iter().map(|r| r.get("text")).collect();
    let files = texts.len() as u64;
    let text_tokens: u64 = texts
        .iter()
        .map(|t| e5.tokenizer().encode(t).len() as u64)
        .sum();
    let embedded = text_tokens + files * (prefix + 2);
    println!(
        "CPU: {}, {threads} threads, ingest concurrency {}",
        cpu_model(),
        std::env::var("SOURCE_INDEX_CONCURRENCY").unwrap_or_else(|_| "default".into())
    );
    println!(
        "{rows} demo rows, {files} indexed rows in {secs:.1} s: {:.0} rows/s, {:.0} text tokens/s, {:.0} embedded tokens/s",
        files as f64 / secs,
        text_tokens as f64 / secs,
        embedded as f64 / secs
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(drop_db(&db));
}
