//! Ingestion throughput with multilingual-e5-small: text → NFC → token chunks (the ingest
//! chunker over e5's tokenizer) → passage embeddings in batches of 32 → upsert into an
//! embedded store in a temporary folder, then optimize. Prints embedded tokens/s (the ids that
//! go through the encoder: `<s>`, `passage: `, the chunk, `</s>`) and text tokens/s (the
//! file's own tokens; overlapping windows embed some twice) for two chunk sizes, with the
//! time of each stage.
//!
//! The text: the 34 Vietnamese and English documents of tests/fixtures/retrieval-eval,
//! joined four times over in different orders (about 45,000 tokens). Threads: candle's pool
//! (`RAYON_NUM_THREADS`, else every core).
//!
//! `cargo bench -p nfai-benches --bench retrieval_ingest` (after `nfai models fetch`)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program stops at the first failed setup step"
)]

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use nfai_models::{E5Embedder, InputKind};
use nfai_retrieval::ingest::{ChunkingStrategy, EmbedderLimits, chunk_text, normalize_text};
use nfai_retrieval::{
    Chunk, ChunkPayload, CollectionSpec, EdgeCollection, EdgeStoreOptions, chunk_point_id,
};

const BATCH: usize = 32;
const COPIES: usize = 4;

fn corpus() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/retrieval-eval/docs");
    let mut docs: Vec<String> = std::fs::read_dir(&dir)
        .expect("read the documents")
        .map(|e| std::fs::read_to_string(e.expect("an entry").path()).expect("a document"))
        .collect();
    docs.sort();
    let mut text = String::new();
    for copy in 0..COPIES {
        // A different order each time, so that windows do not repeat exactly.
        let n = docs.len();
        for i in 0..n {
            text.push_str(&docs[(i * (2 * copy + 1) + copy) % n]);
            text.push_str("\n\n");
        }
    }
    text
}

/// Token byte ranges from e5's tokenizer, word by word (XLM-R's pieces never span a space).
fn offsets(model: &E5Embedder, text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                let pieces = model.tokenizer().encode(&text[s..i]).len();
                out.extend(std::iter::repeat_n(s..i, pieces));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    out
}

struct Run {
    label: String,
    window: usize,
    overlap: usize,
    chunks: usize,
    text_tokens: usize,
    embedded_tokens: usize,
    chunk_s: f64,
    embed_s: f64,
    store_s: f64,
}

fn run(model: &E5Embedder, text: &str, strategy: ChunkingStrategy, label: &str) -> Run {
    let prefix = model.tokenizer().encode("passage:").len();
    let limits = EmbedderLimits::from_positions(model.max_tokens(), 2, prefix);
    let (window, overlap) = strategy.window(limits).expect("a valid strategy");

    let started = Instant::now();
    let normalized = normalize_text(text);
    let tokenizer = |t: &str| Ok(offsets(model, t));
    let chunks = chunk_text(&normalized, strategy, limits, &tokenizer).expect("chunk");
    let ids: Vec<Vec<u32>> = chunks
        .iter()
        .map(|c| model.tokenize(&c.text, InputKind::Passage))
        .collect();
    let chunk_s = started.elapsed().as_secs_f64();
    let text_tokens = offsets(model, &normalized).len();
    let embedded_tokens = ids.iter().map(Vec::len).sum();

    let started = Instant::now();
    let mut vectors = Vec::with_capacity(ids.len());
    for batch in ids.chunks(BATCH) {
        vectors.extend(model.embed(batch).expect("embed"));
    }
    let embed_s = started.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().expect("a temporary folder");
    let spec = CollectionSpec {
        model: "multilingual-e5-small".into(),
        dimension: model.dim(),
    };
    let started = Instant::now();
    let collection =
        EdgeCollection::create("ingest", dir.path(), spec, &EdgeStoreOptions::default())
            .expect("create");
    let points: Vec<Chunk> = chunks
        .iter()
        .zip(vectors)
        .map(|(c, vector)| Chunk {
            id: chunk_point_id("file-bench", c.index),
            vector,
            payload: ChunkPayload {
                file_id: "file-bench".into(),
                filename: "corpus.md".into(),
                chunk_index: c.index,
                text: c.text.clone(),
                attributes: BTreeMap::new(),
                lang: nfai_retrieval::ingest::detect_language(&c.text),
            },
        })
        .collect();
    for batch in points.chunks(256) {
        collection.upsert(batch.to_vec()).expect("upsert");
    }
    while collection.optimize().expect("optimize") {}
    collection.flush().expect("flush");
    let store_s = started.elapsed().as_secs_f64();

    Run {
        label: label.into(),
        window,
        overlap,
        chunks: chunks.len(),
        text_tokens,
        embedded_tokens,
        chunk_s,
        embed_s,
        store_s,
    }
}

fn main() {
    let path = nfai_models::default_model_dir()
        .join("multilingual-e5-small")
        .join("e5-small-q4.bin");
    let model = E5Embedder::load(&path, &Device::Cpu).expect("run `nfai models fetch` first");
    let text = corpus();
    // Warm-up: page the weights in and start the thread pool.
    model
        .embed_texts(&["khởi động", "warm-up"], InputKind::Passage)
        .expect("warm-up");

    let runs = [
        run(&model, &text, ChunkingStrategy::Auto, "auto"),
        run(
            &model,
            &text,
            ChunkingStrategy::Static {
                max_chunk_size_tokens: 256,
                chunk_overlap_tokens: 64,
            },
            "static 256 / 64",
        ),
    ];
    println!(
        "\nIngestion with multilingual-e5-small: {} bytes of Vietnamese and English text, \
         batches of {BATCH} chunks, {} compute threads\n",
        text.len(),
        candle_core::utils::get_num_threads()
    );
    println!(
        "| chunking | window / overlap | chunks | text tokens | embedded tokens | chunk s | embed s | store s | embedded tokens/s (embed) | text tokens/s (whole pipeline) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &runs {
        let total = r.chunk_s + r.embed_s + r.store_s;
        println!(
            "| {} | {} / {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} |",
            r.label,
            r.window,
            r.overlap,
            r.chunks,
            r.text_tokens,
            r.embedded_tokens,
            r.chunk_s,
            r.embed_s,
            r.store_s,
            r.embedded_tokens as f64 / r.embed_s,
            r.text_tokens as f64 / total,
        );
    }
}
