//! Tests against the real Gemma 3 270M GGUF (`nfai models fetch` downloads it): batching and
//! chunked-prefill invariants, load time and memory, and (ignored by default) a throughput probe.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use candle_core::Device;

use super::testutil::argmax_rows;
use crate::Result;
use crate::lm::{BatchEntry, CausalLm, SeqKvCache};
use crate::loader::{LoadedLm, load_gguf_lm};

/// Path of the real model; panics with instructions when it is missing.
pub(crate) fn real_model_path() -> PathBuf {
    let path = crate::default_model_dir()
        .join("gemma-3-270m")
        .join("gemma-3-270m-q4_k_m.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `nfai models fetch` (or set NFAI_MODEL_DIR) first",
        path.display()
    );
    path
}

/// The real model, loaded once per test process with a 2048-position context.
pub(crate) fn real_lm() -> &'static LoadedLm {
    static LM: OnceLock<std::result::Result<LoadedLm, String>> = OnceLock::new();
    let loaded = LM.get_or_init(|| {
        load_gguf_lm(&real_model_path(), &Device::Cpu, 2048, None).map_err(|e| e.to_string())
    });
    match loaded {
        Ok(lm) => lm,
        Err(e) => panic!("loading the real model failed: {e}"),
    }
}

/// Greedy decoding of several prompts in one batch: `steps` tokens each, without stopping.
pub(crate) fn greedy_batch(
    model: &dyn CausalLm,
    prompts: &[Vec<u32>],
    steps: usize,
) -> Result<Vec<Vec<u32>>> {
    let mut caches: Vec<SeqKvCache> = prompts.iter().map(|_| model.new_cache()).collect();
    let mut outputs: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    let mut inputs: Vec<Vec<u32>> = prompts.to_vec();
    for _ in 0..steps {
        let mut entries: Vec<BatchEntry<'_>> = caches
            .iter_mut()
            .zip(&inputs)
            .map(|(cache, tokens)| BatchEntry { tokens, cache })
            .collect();
        let next = argmax_rows(&model.forward(&mut entries)?)?;
        for ((out, input), t) in outputs.iter_mut().zip(inputs.iter_mut()).zip(next) {
            out.push(t);
            *input = vec![t];
        }
    }
    Ok(outputs)
}

/// A `/proc/self/status` memory figure (`VmRSS`, `VmHWM`) in MB; 0 where unavailable.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

const PROMPTS: [&str; 3] = [
    "The capital of France is",
    "Here is a short story about a robot who learns to paint. Once upon a time,",
    "def fibonacci(n):\n",
];

#[test]
fn real_greedy_batch_matches_single() -> Result<()> {
    batch_matches_single(real_lm())
}

/// Batched decode on GPU 0: `cargo test --features cuda -- --ignored gpu_`.
#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_greedy_batch_matches_single() -> Result<()> {
    let device = crate::device::by_name("cuda:0")?;
    batch_matches_single(&load_gguf_lm(&real_model_path(), &device, 2048, None)?)
}

fn batch_matches_single(lm: &LoadedLm) -> Result<()> {
    let prompts: Vec<Vec<u32>> = PROMPTS
        .iter()
        .map(|p| lm.tokenizer.encode(p, true))
        .collect::<Result<_>>()?;
    let batched = greedy_batch(lm.model.as_ref(), &prompts, 20)?;
    for (p, want) in prompts.iter().zip(&batched) {
        let alone = greedy_batch(lm.model.as_ref(), std::slice::from_ref(p), 20)?;
        assert_eq!(&alone[0], want, "prompt {p:?}");
    }
    println!(
        "greedy: {:?}",
        batched
            .iter()
            .map(|ids| lm.tokenizer.decode(ids, false))
            .collect::<Result<Vec<_>>>()?
    );
    Ok(())
}

#[test]
fn real_continued_prompt_matches_full_prefill() -> Result<()> {
    let lm = real_lm();
    let model = lm.model.as_ref();
    let ids = lm.tokenizer.encode(PROMPTS[1], true)?;
    let mut full = model.new_cache();
    let want = model.forward(&mut [BatchEntry {
        tokens: &ids,
        cache: &mut full,
    }])?;
    let mut cache = model.new_cache();
    let split = ids.len() / 2;
    model.forward(&mut [BatchEntry {
        tokens: &ids[..split],
        cache: &mut cache,
    }])?;
    let got = model.forward(&mut [BatchEntry {
        tokens: &ids[split..],
        cache: &mut cache,
    }])?;
    assert_eq!(argmax_rows(&got)?, argmax_rows(&want)?);
    // Different chunkings round differently inside attention; the argmax must agree.
    let diff = super::testutil::max_abs_diff(&got, &want)?;
    println!("continued vs full prefill: max logit diff {diff}");
    Ok(())
}

#[test]
fn real_load_time_and_memory() -> Result<()> {
    let path = real_model_path();
    let before = status_mb("VmRSS:");
    let t = Instant::now();
    let lm = load_gguf_lm(&path, &Device::Cpu, 4096, None)?;
    let total = t.elapsed();
    let after = status_mb("VmRSS:");
    let peak = status_mb("VmHWM:");
    // The phases one after the other (the loader overlaps the tokenizer with the weights).
    let t = Instant::now();
    let gguf = crate::gguf::GgufFile::open(&path)?;
    let read = t.elapsed();
    let t = Instant::now();
    crate::tokenizer::gguf::from_gguf(&gguf)?;
    let tok = t.elapsed();
    let t = Instant::now();
    super::Gemma3::load(&gguf, &Device::Cpu, 4096)?;
    let weights = t.elapsed();
    println!(
        "load_gguf_lm {:.0} ms, RSS {before:.0} -> {after:.0} MB (peak {peak:.0} MB); \
         phases: header {:.0} ms, tokenizer {:.0} ms, weights {:.0} ms",
        total.as_secs_f64() * 1e3,
        read.as_secs_f64() * 1e3,
        tok.as_secs_f64() * 1e3,
        weights.as_secs_f64() * 1e3,
    );
    let info = lm.model.info();
    assert_eq!(info.vocab_size, 262_144);
    assert_eq!(info.context_length, 4096);
    // f16 on the CPU (see `lm::kv_dtype`).
    assert_eq!(info.kv_bytes_per_token, 18 * 256 * 2 * 2);
    assert_eq!(info.eos_token_ids, vec![1, 106]);
    assert_eq!(lm.tokenizer.vocab_size(), 262_144);
    let cfg = super::Gemma3::load(&gguf, &Device::Cpu, 64)?
        .config()
        .clone();
    let global: Vec<usize> = (0..18).filter(|i| !cfg.local_layers[*i]).collect();
    assert_eq!(global, vec![5, 11, 17]);
    assert_eq!(cfg.sliding_window, Some(512));
    assert_eq!(cfg.attn_scale, 1.0 / 16.0);
    Ok(())
}

/// Prefill and decode speed at batch 1 and 4; run with `--ignored --nocapture`.
#[test]
#[ignore = "throughput probe, run explicitly"]
fn real_throughput() -> Result<()> {
    let lm = real_lm();
    let model = lm.model.as_ref();
    let base = lm.tokenizer.encode(&PROMPTS[1].repeat(8), true)?;
    // Warm-up: the first multiplications repack some weights.
    greedy_batch(model, &[base[..16].to_vec(), base[..8].to_vec()], 2)?;
    for batch in [1usize, 4] {
        let prompts: Vec<Vec<u32>> = (0..batch)
            .map(|i| {
                let mut p = base[..127].to_vec();
                p.insert(1, 1000 + i as u32);
                p
            })
            .collect();
        let mut caches: Vec<SeqKvCache> = prompts.iter().map(|_| model.new_cache()).collect();
        let t = Instant::now();
        let mut entries: Vec<BatchEntry<'_>> = caches
            .iter_mut()
            .zip(&prompts)
            .map(|(cache, tokens)| BatchEntry { tokens, cache })
            .collect();
        let mut last = argmax_rows(&model.forward(&mut entries)?)?;
        drop(entries);
        let prefill = t.elapsed().as_secs_f64();
        let steps = 64;
        let t = Instant::now();
        for _ in 0..steps {
            let inputs: Vec<Vec<u32>> = last.iter().map(|t| vec![*t]).collect();
            let mut entries: Vec<BatchEntry<'_>> = caches
                .iter_mut()
                .zip(&inputs)
                .map(|(cache, tokens)| BatchEntry { tokens, cache })
                .collect();
            last = argmax_rows(&model.forward(&mut entries)?)?;
        }
        let decode = t.elapsed().as_secs_f64();
        println!(
            "batch {batch}: prefill {:.1} tok/s ({} x 128 tokens in one pass), decode {:.1} tok/s aggregate ({:.1} per sequence)",
            (batch * 128) as f64 / prefill,
            batch,
            (batch * steps) as f64 / decode,
            steps as f64 / decode,
        );
    }
    Ok(())
}
