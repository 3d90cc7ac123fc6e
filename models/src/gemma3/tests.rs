//! Invariants of the batched forward pass on a tiny random Gemma 3, and a comparison with a
//! naive element-by-element reference of the whole model.

use candle_core::Device;
use candle_core::quantized::GgmlDType;

use super::testutil::{TINY_VOCAB, TinySpec, argmax_rows, max_abs_diff, write_tiny_gemma};
use super::*;

fn load(spec: &TinySpec, ctx: usize) -> Result<(tempfile::NamedTempFile, GgufFile, Gemma3)> {
    let file = write_tiny_gemma(spec)?;
    let g = GgufFile::open(file.path())?;
    let m = Gemma3::load(&g, &Device::Cpu, ctx)?;
    Ok((file, g, m))
}

/// One forward pass over `(tokens, cache)` pairs.
fn step(m: &Gemma3, caches: &mut [SeqKvCache], tokens: &[Vec<u32>]) -> Result<Tensor> {
    let mut entries: Vec<BatchEntry<'_>> = caches
        .iter_mut()
        .zip(tokens)
        .map(|(cache, t)| BatchEntry { tokens: t, cache })
        .collect();
    m.forward(&mut entries)
}

fn tokens(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed * 97)) % TINY_VOCAB as u32)
        .collect()
}

/// Decoding far past the sliding window, where the window layers move their kept keys to the
/// front of smaller buffers again and again, gives the logits of the same decode with a cache
/// that keeps every position, in much less memory.
#[test]
fn tiny_long_decode_past_the_window_matches_full_prefill() -> Result<()> {
    let spec = TinySpec {
        context: 512,
        ..TinySpec::default()
    };
    let (_f, _g, m) = load(&spec, 512)?;
    let seq = tokens(300, 11);
    let decode = |mut c: Vec<SeqKvCache>| -> Result<(Tensor, Vec<SeqKvCache>)> {
        step(&m, &mut c, &[seq[..20].to_vec()])?;
        let mut last = None;
        for &t in &seq[20..] {
            last = Some(step(&m, &mut c, &[vec![t]])?);
        }
        Ok((last.ok_or_else(|| ModelError::Input("no step".into()))?, c))
    };
    let (want, full) = decode(vec![SeqKvCache::new(spec.layers)])?;
    let (got, c) = decode(vec![m.new_cache()])?;
    let d = max_abs_diff(&got, &want)?;
    assert!(d < 1e-5, "max diff {d}");
    assert!(
        c[0].allocated_bytes() < full[0].allocated_bytes() / 2,
        "window layers hold {} bytes against {} for a full cache",
        c[0].allocated_bytes(),
        full[0].allocated_bytes()
    );
    Ok(())
}

#[test]
fn tiny_batched_prefill_and_decode_match_single() -> Result<()> {
    let (_f, _g, m) = load(&TinySpec::default(), 64)?;
    let prompts = [tokens(3, 1), tokens(9, 2), tokens(6, 3)];
    let mut alone: Vec<SeqKvCache> = Vec::new();
    let mut alone_logits = Vec::new();
    for p in &prompts {
        let mut c = vec![m.new_cache()];
        alone_logits.push(step(&m, &mut c, std::slice::from_ref(p))?);
        alone.extend(c);
    }
    let mut batched: Vec<SeqKvCache> = (0..3).map(|_| m.new_cache()).collect();
    let logits = step(&m, &mut batched, &prompts)?;
    assert_eq!(logits.dims(), &[3, TINY_VOCAB]);
    for (i, single) in alone_logits.iter().enumerate() {
        let d = max_abs_diff(&logits.narrow(0, i, 1)?, single)?;
        assert!(d < 1e-4, "prefill entry {i}: max diff {d}");
    }
    let mut next = argmax_rows(&logits)?;
    for s in 0..8 {
        let toks: Vec<Vec<u32>> = next.iter().map(|t| vec![*t]).collect();
        let batch = step(&m, &mut batched, &toks)?;
        for (i, t) in toks.iter().enumerate() {
            let single = step(
                &m,
                std::slice::from_mut(&mut alone[i]),
                std::slice::from_ref(t),
            )?;
            let d = max_abs_diff(&batch.narrow(0, i, 1)?, &single)?;
            assert!(d < 1e-4, "decode step {s} entry {i}: max diff {d}");
        }
        next = argmax_rows(&batch)?;
    }
    assert_eq!(batched[1].len(), 9 + 8);
    Ok(())
}

#[test]
fn tiny_continued_chunks_match_full_prefill() -> Result<()> {
    let (_f, _g, m) = load(&TinySpec::default(), 64)?;
    let prompt = tokens(13, 5);
    let mut full = vec![m.new_cache()];
    let want = step(&m, &mut full, std::slice::from_ref(&prompt))?;
    for splits in [vec![5, 13], vec![1, 2, 9, 13], vec![12, 13]] {
        let mut c = vec![m.new_cache()];
        let mut start = 0;
        let mut got = None;
        for end in splits.iter().copied() {
            got = Some(step(&m, &mut c, &[prompt[start..end].to_vec()])?);
            start = end;
        }
        let got = got.ok_or_else(|| ModelError::Input("no chunk".into()))?;
        let d = max_abs_diff(&got, &want)?;
        assert!(d < 1e-4, "splits {splits:?}: max diff {d}");
    }
    // Prefix reuse: a cache filled with another prompt, truncated to the shared prefix.
    let mut other = prompt[..7].to_vec();
    other.extend(tokens(6, 9));
    let mut c = vec![m.new_cache()];
    step(&m, &mut c, &[other])?;
    assert_eq!(c[0].truncate(7), 7);
    let got = step(&m, &mut c, &[prompt[7..].to_vec()])?;
    let d = max_abs_diff(&got, &want)?;
    assert!(d < 1e-4, "prefix reuse: max diff {d}");
    Ok(())
}

#[test]
fn tiny_single_local_layer_sees_only_the_window() -> Result<()> {
    // One sliding-window layer: the last position depends only on the last `window` tokens, so
    // changing any earlier token leaves its logits unchanged, in prefill and in decode.
    let spec = TinySpec {
        layers: 1,
        window: 4,
        ..TinySpec::default()
    };
    let (_f, _g, m) = load(&spec, 64)?;
    assert_eq!(m.config().local_layers, vec![true]);
    let seq = tokens(20, 11);
    let mut other = tokens(16, 12);
    other.extend_from_slice(&seq[16..]);
    let mut inside = seq.clone();
    inside[16] = (inside[16] + 1) % TINY_VOCAB as u32;
    let prefill = |s: &[u32]| -> Result<Tensor> {
        let mut c = vec![m.new_cache()];
        step(&m, &mut c, &[s.to_vec()])
    };
    let decode = |s: &[u32]| -> Result<Tensor> {
        let mut c = vec![m.new_cache()];
        let mut last = None;
        for t in s {
            last = Some(step(&m, &mut c, &[vec![*t]])?);
        }
        last.ok_or_else(|| ModelError::Input("no step".into()))
    };
    for (mode, run) in [
        ("prefill", &prefill as &dyn Fn(&[u32]) -> Result<Tensor>),
        ("decode", &decode),
    ] {
        let base = run(&seq)?;
        let d = max_abs_diff(&base, &run(&other)?)?;
        assert!(
            d < 1e-6,
            "{mode}: a token outside the window changed the logits by {d}"
        );
        let d = max_abs_diff(&base, &run(&inside)?)?;
        assert!(
            d > 1e-3,
            "{mode}: a token inside the window changed nothing"
        );
    }
    Ok(())
}

#[test]
fn tiny_matches_naive_reference() -> Result<()> {
    let spec = TinySpec {
        dtype: GgmlDType::F32,
        ..TinySpec::default()
    };
    let (_f, g, m) = load(&spec, 64)?;
    let seq = tokens(12, 4);
    let want = super::reference::last_logits(&g, m.config(), &seq)?;
    let want = Tensor::from_vec(want, (1, TINY_VOCAB), &Device::Cpu)?;
    let mut c = vec![m.new_cache()];
    let got = step(&m, &mut c, std::slice::from_ref(&seq))?;
    let d = max_abs_diff(&got, &want)?;
    // Both round to f16 in the same places, but from f32 and f64 values respectively, so an
    // element can land on the other side of a rounding boundary now and then.
    assert!(d < 1e-2, "prefill vs reference: max diff {d}");
    let mut c = vec![m.new_cache()];
    step(&m, &mut c, &[seq[..5].to_vec()])?;
    let mut got = None;
    for t in &seq[5..] {
        got = Some(step(&m, &mut c, &[vec![*t]])?);
    }
    let got = got.ok_or_else(|| ModelError::Input("no step".into()))?;
    let d = max_abs_diff(&got, &want)?;
    assert!(d < 1e-2, "decode vs reference: max diff {d}");
    Ok(())
}

#[test]
fn tiny_rejects_bad_input() -> Result<()> {
    let (_f, _g, m) = load(&TinySpec::default(), 16)?;
    assert_eq!(m.info().context_length, 16);
    assert_eq!(m.info().vocab_size, TINY_VOCAB);
    assert_eq!(m.info().eos_token_ids, vec![1, 270]);
    assert_eq!(m.info().kv_bytes_per_token, 6 * 2 * 32 * 2 * 2); // f16 on the CPU
    let is_input = |r: Result<Tensor>| matches!(r, Err(ModelError::Input(_)));
    assert!(is_input(m.forward(&mut [])));
    let mut c = vec![m.new_cache()];
    assert!(is_input(step(&m, &mut c, &[vec![]])));
    assert!(is_input(step(&m, &mut c, &[vec![TINY_VOCAB as u32]])));
    assert!(is_input(step(&m, &mut c, &[tokens(17, 1)])));
    step(&m, &mut c, &[tokens(16, 1)])?;
    assert!(is_input(step(&m, &mut c, &[vec![5]])));
    let mut wrong = vec![SeqKvCache::new(2)];
    assert!(is_input(step(&m, &mut wrong, &[vec![5]])));
    // A failed pass leaves the cache as it was.
    let mut c = vec![m.new_cache()];
    step(&m, &mut c, &[tokens(4, 2)])?;
    assert!(is_input(step(&m, &mut c, &[vec![1, TINY_VOCAB as u32]])));
    assert_eq!(c[0].len(), 4);
    Ok(())
}
