//! Constrained decoding cost per token on SmolLM2-135M-Instruct (run `nfai models fetch`
//! first): one decode step of the model (a token through the model with its KV cache, then
//! greedy sampling) against the grammar's work for one token (the mask over the vocabulary,
//! applied to the logits row, and advancing the grammar), walking a CRM ticket as JSON under
//! its schema. Prints the grammar's cost as a share of the decode step (the target is 10% or
//! less).
//!
//! `cargo bench -p nfai-benches --bench constrained`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program stops at the first failed setup step"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use candle_core::Device;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nfai_inference::constrain::{Constraint, Grammars, OutputFormat};
use nfai_models::{BatchEntry, LoadedLm, load_gguf_lm};
use serde_json::json;

const DOC: &str = r#"{"intent":"delivery","urgent":true,"order":4521,"customer":"Nguyen Van An","notes":"Asked when order 4521 arrives; it was due yesterday and the customer needs it before Friday."}"#;

fn smollm2() -> LoadedLm {
    let path = nfai_models::default_model_dir()
        .join("smollm2-135m-instruct")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf");
    load_gguf_lm(&path, &Device::Cpu, 4096, None).expect("run `nfai models fetch` first")
}

fn format() -> OutputFormat {
    OutputFormat::JsonSchema(json!({
        "type": "object",
        "properties": {
            "intent": { "enum": ["delivery", "refund", "complaint", "other"] },
            "urgent": { "type": "boolean" },
            "order": { "type": "integer" },
            "customer": { "type": "string" },
            "notes": { "type": "string" }
        },
        "required": ["intent", "urgent", "order", "customer", "notes"],
        "additionalProperties": false
    }))
}

/// Decodes `tokens` one at a time after a short prompt, picking the argmax of each row.
fn decode(lm: &LoadedLm, prompt: &[u32], tokens: &[u32]) {
    let mut cache = lm.model.new_cache();
    lm.model
        .forward(&mut [BatchEntry {
            tokens: prompt,
            cache: &mut cache,
        }])
        .unwrap();
    for t in tokens {
        let logits = lm
            .model
            .forward(&mut [BatchEntry {
                tokens: std::slice::from_ref(t),
                cache: &mut cache,
            }])
            .unwrap();
        let row = logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        black_box(row.iter().copied().fold(f32::NEG_INFINITY, f32::max));
    }
}

/// The grammar's work for each of `tokens`: the mask applied to a logits row, then the token.
fn constrain(mut c: Constraint, tokens: &[u32], row: &mut [f32]) {
    for &t in tokens {
        c.mask(row).unwrap();
        c.accept(t).unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let lm = smollm2();
    let vocab = lm.model.info().vocab_size;
    let tokens = lm.tokenizer.encode(DOC, false).unwrap();
    let prompt = lm
        .tokenizer
        .encode("Summarise the ticket as JSON.", true)
        .unwrap();
    let started = Instant::now();
    let grammars = Grammars::new(&lm.tokenizer, vocab).unwrap();
    println!(
        "token trie for {vocab} tokens built in {:?}",
        started.elapsed()
    );

    let mut g = c.benchmark_group("constrained_decoding");
    g.throughput(Throughput::Elements(tokens.len() as u64));
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("decode_unconstrained", |b| {
        b.iter(|| decode(&lm, &prompt, &tokens))
    });
    g.bench_function("grammar_mask_and_advance", |b| {
        b.iter_batched(
            || (grammars.compile(&format()).unwrap(), vec![0.0f32; vocab]),
            |(c, mut row)| constrain(c, &tokens, &mut row),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // The same two costs timed directly, for the ratio.
    let rounds = 5;
    let t = Instant::now();
    for _ in 0..rounds {
        decode(&lm, &prompt, &tokens);
    }
    let decode_per_token = t.elapsed().as_secs_f64() / (rounds * tokens.len()) as f64;
    let mut row = vec![0.0f32; vocab];
    let mut grammar = Duration::ZERO;
    for _ in 0..rounds {
        let c = grammars.compile(&format()).unwrap();
        let t = Instant::now();
        constrain(c, &tokens, &mut row);
        grammar += t.elapsed();
    }
    let grammar_per_token = grammar.as_secs_f64() / (rounds * tokens.len()) as f64;
    println!(
        "per token: decode {:.3} ms, grammar {:.3} ms; grammar / decode = {:.1}% (target <= 10%)",
        decode_per_token * 1e3,
        grammar_per_token * 1e3,
        100.0 * grammar_per_token / decode_per_token
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
