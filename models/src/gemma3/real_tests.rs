//! Tests against the real Gemma 3 270M GGUF (`nfai models fetch` downloads it): batching and
//! chunked-prefill invariants, load time and memory, and (ignored by default) a throughput probe.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use candle_core::Device;

use super::testutil::argmax_rows;
use crate::lm::{BatchEntry, CausalLm, SeqKvCache};
use crate::loader::{LoadedLm, load_gguf_lm};
use crate::Result;

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

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
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
    let lm = real_lm();
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
    let before = rss_mb();
    let t = Instant::now();
    let gguf = crate::gguf::GgufFile::open(&path)?;
    let read = t.elapsed();
    let t = Instant::now();
    let tokenizer = crate::tokenizer::gguf::from_gguf(&gguf)?;
    let tok = t.elapsed();
    let t = Instant::now();
    let model = super::Gemma3::load(&gguf, &Device::Cpu, 4096)?;
    let weights = t.elapsed();
    drop(gguf);
    let after = rss_mb();
    println!(
        "load: header {:.0} ms, tokenizer {:.0} ms, weights {:.0} ms; RSS {before:.0} -> {after:.0} MB",
        read.as_secs_f64() * 1e3,
        tok.as_secs_f64() * 1e3,
        weights.as_secs_f64() * 1e3,
    );
    assert_eq!(model.info().vocab_size, 262_144);
    assert_eq!(model.info().context_length, 4096);
    assert_eq!(model.info().kv_bytes_per_token, 18 * 256 * 2 * 4);
    assert_eq!(tokenizer.vocab_size(), 262_144);
    let local: Vec<usize> = (0..18).filter(|i| !model.config().local_layers[*i]).collect();
    assert_eq!(local, vec![5, 11, 17]);
    Ok(())
}

/// Prefill and decode speed at batch 1 and 4; run with `--ignored --nocapture`.
#[test]
#[ignore = "throughput probe, run explicitly"]
fn real_throughput() -> Result<()> {
    let lm = real_lm();
    let model = lm.model.as_ref();
    let base = lm.tokenizer.encode(&PROMPTS[1].repeat(8), true)?;
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
        let mut last = Vec::new();
        for (p, c) in prompts.iter().zip(caches.iter_mut()) {
            let logits = model.forward(&mut [BatchEntry {
                tokens: p,
                cache: c,
            }])?;
            last.extend(argmax_rows(&logits)?);
        }
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
            "batch {batch}: prefill {:.1} tok/s ({} x 128 tokens), decode {:.1} tok/s aggregate ({:.1} per sequence)",
            (batch * 128) as f64 / prefill,
            batch,
            (batch * steps) as f64 / decode,
            steps as f64 / decode,
        );
    }
    Ok(())
}

#[test]
#[ignore]
fn debug_batch_diff() -> Result<()> {
    let lm = real_lm();
    let model = lm.model.as_ref();
    let prompts: Vec<Vec<u32>> = PROMPTS
        .iter()
        .map(|p| lm.tokenizer.encode(p, true))
        .collect::<Result<_>>()?;
    let mut bc: Vec<SeqKvCache> = prompts.iter().map(|_| model.new_cache()).collect();
    let mut sc = model.new_cache();
    let mut inputs = prompts.clone();
    let mut single_in = prompts[0].clone();
    for step in 0..10 {
        let mut entries: Vec<BatchEntry<'_>> = bc
            .iter_mut()
            .zip(&inputs)
            .map(|(cache, tokens)| BatchEntry { tokens, cache })
            .collect();
        let b = model.forward(&mut entries)?;
        let s = model.forward(&mut [BatchEntry { tokens: &single_in, cache: &mut sc }])?;
        let b0 = b.narrow(0, 0, 1)?;
        let d = super::testutil::max_abs_diff(&b0, &s)?;
        let sv = s.flatten_all()?.to_vec1::<f32>()?;
        let mut idx: Vec<usize> = (0..sv.len()).collect();
        idx.sort_by(|a, c| sv[*c].total_cmp(&sv[*a]));
        let bv = b0.flatten_all()?.to_vec1::<f32>()?;
        println!("step {step}: diff {d}, single top {:?}, batch top {:?}", idx[..3].iter().map(|i| (*i, sv[*i])).collect::<Vec<_>>(), idx[..3].iter().map(|i| (*i, bv[*i])).collect::<Vec<_>>());
        let next = argmax_rows(&b)?;
        println!("inputs {:?} lens {:?}", inputs, bc.iter().map(|c| c.len()).collect::<Vec<_>>());
        inputs = next.iter().map(|t| vec![*t]).collect();
        single_in = vec![next[0]];
    }
    Ok(())
}

#[test]
#[ignore]
fn debug_incremental_vs_prefill() -> Result<()> {
    let lm = real_lm();
    let model = lm.model.as_ref();
    let mut seq = lm.tokenizer.encode(PROMPTS[0], true)?;
    let n0 = seq.len();
    seq.extend([506u32, 5279, 529, 506, 2891]);
    let mut inc = model.new_cache();
    model.forward(&mut [BatchEntry { tokens: &seq[..n0], cache: &mut inc }])?;
    for i in n0..seq.len() {
        let a = model.forward(&mut [BatchEntry { tokens: &seq[i..i + 1], cache: &mut inc }])?;
        let mut c = model.new_cache();
        let b = model.forward(&mut [BatchEntry { tokens: &seq[..=i], cache: &mut c }])?;
        let mut c2 = model.new_cache();
        let pair = [seq[..=i].to_vec(), seq[..=i].to_vec()];
        let mut caches = vec![c2, model.new_cache()];
        c2 = model.new_cache();
        let _ = &c2;
        let mut entries: Vec<BatchEntry<'_>> = caches.iter_mut().zip(&pair).map(|(cache, tokens)| BatchEntry { tokens, cache }).collect();
        let bb = model.forward(&mut entries)?;
        println!("len {}: incremental vs prefill {}, batched prefill vs prefill {}", i + 1,
            super::testutil::max_abs_diff(&a, &b)?, super::testutil::max_abs_diff(&bb.narrow(0, 0, 1)?, &b)?);
    }
    Ok(())
}

#[test]
#[ignore]
fn debug_t1() -> Result<()> {
    let lm = real_lm();
    let model = lm.model.as_ref();
    let mut seq = lm.tokenizer.encode(PROMPTS[0], true)?;
    seq.extend([506u32, 5279, 529, 506, 2891, 529, 506, 2891, 529]);
    for n in [8usize, 9, 10, 12, 15] {
        let mut c = model.new_cache();
        let full = model.forward(&mut [BatchEntry { tokens: &seq[..n], cache: &mut c }])?;
        for (pre, chunk) in [(n - 1, 1usize), (n - 2, 2), (n - 3, 3), (1, n - 1)] {
            let mut c = model.new_cache();
            model.forward(&mut [BatchEntry { tokens: &seq[..pre], cache: &mut c }])?;
            let got = model.forward(&mut [BatchEntry { tokens: &seq[pre..pre + chunk], cache: &mut c }])?;
            println!("n {n} pre {pre} chunk {chunk}: {}", super::testutil::max_abs_diff(&got, &full)?);
        }
    }
    Ok(())
}

#[test]
#[ignore]
fn debug_qmatmul_rows() -> Result<()> {
    let g = crate::gguf::GgufFile::open(&real_model_path())?;
    let dev = Device::Cpu;
    for name in ["blk.0.attn_q.weight", "blk.0.attn_output.weight", "blk.0.ffn_down.weight", "blk.1.ffn_down.weight", "blk.0.attn_v.weight", "token_embd.weight"] {
        let q = std::sync::Arc::new(g.tensor(name, &dev)?);
        let dt = q.dtype();
        let lin = crate::layers::QLinear::from_arc(q)?;
        let k = lin.in_features();
        let x = candle_core::Tensor::randn(0f32, 1., (16, k), &dev)?;
        let mut out = String::new();
        for m in 1..=16usize {
            let xm = x.narrow(0, 0, m)?;
            let all = lin.forward(&xm)?;
            let mut worst = 0f32;
            for r in 0..m {
                let one = lin.forward(&x.narrow(0, r, 1)?)?;
                worst = worst.max(super::testutil::max_abs_diff(&all.narrow(0, r, 1)?, &one)?);
            }
            out.push_str(&format!(" m{m}:{worst:.2e}"));
        }
        println!("{name} {dt:?}:{out}");
    }
    Ok(())
}

fn trace(m: &super::Gemma3, entries: &mut [BatchEntry<'_>]) -> Result<Vec<candle_core::Tensor>> {
    use crate::layers::BatchLayout;
    let layout = BatchLayout::new(entries, m.info.vocab_size, m.info.context_length, m.cfg.layers)?;
    let dev = &m.device;
    let ids = candle_core::Tensor::new(layout.token_ids.as_slice(), dev)?;
    let positions = candle_core::Tensor::new(layout.positions.as_slice(), dev)?;
    let mut x = (m.embed.embedding(&ids)? * m.embed_scale)?;
    let mut outs = vec![];
    let last = layout.last_rows(dev)?;
    outs.push(x.index_select(&last, 0)?);
    for block in &m.blocks {
        let (cos, sin) = block.rope.rows(&positions)?;
        x = block.forward(&x, &layout, entries, &cos, &sin)?;
        outs.push(x.index_select(&last, 0)?);
    }
    for (entry, span) in entries.iter_mut().zip(&layout.spans) {
        entry.cache.commit(span.len);
    }
    Ok(outs)
}

#[test]
#[ignore]
fn debug_trace() -> Result<()> {
    let path = real_model_path();
    let g = crate::gguf::GgufFile::open(&path)?;
    let m = super::Gemma3::load(&g, &Device::Cpu, 2048)?;
    let seq: Vec<u32> = vec![2, 818, 5279, 529, 7001, 563, 506, 5279, 529];
    let mut c = m.new_cache();
    let full = trace(&m, &mut [BatchEntry { tokens: &seq, cache: &mut c }])?;
    let mut c = m.new_cache();
    trace(&m, &mut [BatchEntry { tokens: &seq[..8], cache: &mut c }])?;
    let part = trace(&m, &mut [BatchEntry { tokens: &seq[8..], cache: &mut c }])?;
    for (i, (a, b)) in full.iter().zip(&part).enumerate() {
        let scale = a.abs()?.max_all()?.to_scalar::<f32>()?;
        println!("after layer {}: diff {} (max |x| {scale})", i as i64 - 1, super::testutil::max_abs_diff(a, b)?);
    }
    Ok(())
}

#[test]
#[ignore]
fn debug_dump_teacher_forced() -> Result<()> {
    let lm = real_lm();
    let model = lm.model.as_ref();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/gemma-3-270m/greedy.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = serde_json::Map::new();
    for c in v["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap().to_string();
        let prompt: Vec<u32> = serde_json::from_value(c["prompt_ids"].clone()).unwrap();
        let comp: Vec<u32> = serde_json::from_value(c["completion_ids"].clone()).unwrap();
        let mut cache = model.new_cache();
        let mut input = prompt.clone();
        if std::env::var("DBG_SPLIT").is_ok() {
            let n = prompt.len();
            model.forward(&mut [BatchEntry { tokens: &prompt[..n - 3], cache: &mut cache }])?;
            input = prompt[n - 3..].to_vec();
        }
        let mut rows = vec![];
        for t in &comp {
            let logits = model.forward(&mut [BatchEntry { tokens: &input, cache: &mut cache }])?;
            let lp = candle_nn::ops::log_softmax(&logits, 1)?.flatten_all()?.to_vec1::<f32>()?;
            let mut idx: Vec<usize> = (0..lp.len()).collect();
            idx.sort_by(|a, b| lp[*b].total_cmp(&lp[*a]));
            let all: std::collections::BTreeMap<String, f32> = idx[..50].iter().map(|i| (i.to_string(), lp[*i])).collect();
            rows.push(serde_json::json!(all));
            input = vec![*t];
        }
        out.insert(name, serde_json::Value::Array(rows));
    }
    std::fs::write(std::env::var("DBG_OUT").unwrap_or("/tmp/lcpp/ours.json".into()), serde_json::to_string(&out).unwrap()).unwrap();
    Ok(())
}
