//! Model benchmarks on the real default models (run `nfai models fetch` first):
//! tokenization, a 128-token prefill, one decode step at batch 1 and 4, and embeddings at
//! batch 1, 8 and 32.
//!
//! `cargo bench -p nfai-benches --bench models`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program stops at the first failed setup step"
)]

use std::hint::black_box;
use std::time::Duration;

use candle_core::Device;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nfai_models::{BatchEntry, BertEmbedder, CausalLm, LoadedLm, SeqKvCache, load_gguf_lm};

const TEXT: &str = "Khách hàng Nguyễn Văn An đã gọi điện hỏi về đơn hàng #1234. The customer asked \
    whether the invoice for November can be split into two payments, and wants a reply by Friday.";

fn gemma() -> LoadedLm {
    let path = nfai_models::default_model_dir()
        .join("gemma-3-270m")
        .join("gemma-3-270m-q4_k_m.gguf");
    load_gguf_lm(&path, &Device::Cpu, 4096, None).expect("run `nfai models fetch` first")
}

fn prompt(lm: &LoadedLm, n: usize) -> Vec<u32> {
    let mut ids = lm
        .tokenizer
        .encode(&TEXT.repeat(8), true)
        .expect("tokenize");
    ids.truncate(n);
    assert_eq!(ids.len(), n);
    ids
}

/// A cache holding `ids` already.
fn filled(model: &dyn CausalLm, ids: &[u32]) -> SeqKvCache {
    let mut cache = model.new_cache();
    model
        .forward(&mut [BatchEntry {
            tokens: ids,
            cache: &mut cache,
        }])
        .expect("prefill");
    cache
}

fn bench_gemma(c: &mut Criterion) {
    let lm = gemma();
    let model = lm.model.as_ref();
    let mut g = c.benchmark_group("gemma3-270m");
    g.sample_size(10).measurement_time(Duration::from_secs(8));

    g.throughput(Throughput::Bytes(TEXT.len() as u64));
    g.bench_function("tokenize", |b| {
        b.iter(|| lm.tokenizer.encode(black_box(TEXT), true))
    });

    let p128 = prompt(&lm, 128);
    g.throughput(Throughput::Elements(128));
    g.bench_function("prefill_128", |b| {
        b.iter_batched(
            || model.new_cache(),
            |mut cache| {
                model.forward(&mut [BatchEntry {
                    tokens: &p128,
                    cache: &mut cache,
                }])
            },
            BatchSize::PerIteration,
        )
    });

    for batch in [1usize, 4] {
        let prompts: Vec<Vec<u32>> = (0..batch).map(|i| prompt(&lm, 32 + i)).collect();
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("decode_step_batch_{batch}"), |b| {
            b.iter_batched(
                || prompts.iter().map(|p| filled(model, p)).collect::<Vec<_>>(),
                |mut caches| {
                    let next = [1596u32];
                    let mut entries: Vec<BatchEntry<'_>> = caches
                        .iter_mut()
                        .map(|c| BatchEntry {
                            tokens: &next,
                            cache: c,
                        })
                        .collect();
                    model.forward(&mut entries)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn bench_minilm(c: &mut Criterion) {
    let dir = nfai_models::default_model_dir().join("all-minilm-l6-v2");
    let bert = BertEmbedder::load(&dir, &Device::Cpu).expect("run `nfai models fetch` first");
    let sentence = bert
        .tokenize("The customer asked whether the November invoice can be split.")
        .expect("tokenize");
    let mut g = c.benchmark_group("all-minilm-l6-v2");
    g.sample_size(10).measurement_time(Duration::from_secs(6));
    for batch in [1usize, 8, 32] {
        let inputs = vec![sentence.clone(); batch];
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("embed_batch_{batch}"), |b| {
            b.iter(|| bert.embed(black_box(&inputs)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_gemma, bench_minilm);
criterion_main!(benches);
