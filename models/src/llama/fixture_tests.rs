//! The tiny synthetic Llama, Qwen2 and Qwen3 files against llama.cpp: at every prompt position,
//! the log-probabilities of llama.cpp's eight most likely next tokens
//! (`tests/fixtures/synth-logits/*.json`, made by `scripts/llama-cpp-synth-fixtures.sh` from
//! the same `nfai models synth` files the test writes again) must be within [`TOLERANCE`] of
//! ours, and our most likely token must be llama.cpp's at 99% of the positions or more. Random
//! weights give near-flat distributions, so a wrong RoPE style, bias or norm shows at once.

use candle_core::Device;

use crate::gemma3::fixture_tests::fixture_in;
use crate::lm::BatchEntry;
use crate::synth::{SynthShape, parse_dtype, write_synthetic};
use crate::{ModelError, Result};

/// Largest |our log-probability − llama.cpp's| allowed for its top-8 tokens, in nats.
const TOLERANCE: f32 = 0.02;

#[derive(Debug, serde::Deserialize)]
struct LogitFixture {
    synth: String,
    cases: Vec<LogitCase>,
}

#[derive(Debug, serde::Deserialize)]
struct LogitCase {
    name: String,
    prompt_ids: Vec<u32>,
    positions: Vec<Top>,
}

#[derive(Debug, serde::Deserialize)]
struct Top {
    ids: Vec<u32>,
    logprobs: Vec<f32>,
}

/// `(shape, quant, seed)` from the fixture's `models synth --shape S --quant Q --seed N`.
fn synth_args(s: &str) -> Option<(String, String, u64)> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let arg = |flag: &str| {
        let i = words.iter().position(|w| *w == flag)?;
        words.get(i + 1).map(|v| v.to_string())
    };
    Some((
        arg("--shape")?,
        arg("--quant")?,
        arg("--seed")?.parse().ok()?,
    ))
}

fn check(name: &str) -> Result<()> {
    let fx: LogitFixture =
        serde_json::from_str(&fixture_in("synth-logits", &format!("{name}.json")))
            .map_err(|e| ModelError::Format(format!("{name}.json: {e}")))?;
    let (shape_name, quant, seed) = synth_args(&fx.synth)
        .ok_or_else(|| ModelError::Format(format!("synth arguments {:?}", fx.synth)))?;
    let shape = SynthShape::preset(&shape_name)
        .ok_or_else(|| ModelError::Format(format!("no preset {shape_name}")))?;
    let dtype = parse_dtype(&quant).ok_or_else(|| ModelError::Format(quant.clone()))?;
    let dir = tempfile::tempdir().map_err(|e| ModelError::io(std::path::Path::new("tmp"), e))?;
    let path = dir.path().join("synth.gguf");
    write_synthetic(&path, &shape_name, &shape, dtype, seed, |_, _| {})?;
    let lm = crate::load_gguf_lm(&path, &Device::Cpu, 512, None)?;
    let model = lm.model.as_ref();
    let (mut positions, mut agree, mut worst) = (0usize, 0usize, 0f32);
    for case in &fx.cases {
        assert_eq!(case.positions.len(), case.prompt_ids.len());
        let mut cache = model.new_cache();
        for (&token, theirs) in case.prompt_ids.iter().zip(&case.positions) {
            let logits = model.forward(&mut [BatchEntry {
                tokens: &[token],
                cache: &mut cache,
            }])?;
            let lp = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            for (&id, &want) in theirs.ids.iter().zip(&theirs.logprobs) {
                worst = worst.max((lp[id as usize] - want).abs());
            }
            let ours = lp
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i as u32);
            positions += 1;
            agree += usize::from(theirs.ids.first() == Some(&ours));
        }
        println!("{name}/{}: {} positions", case.name, case.prompt_ids.len());
    }
    println!(
        "{name}: top-1 agreement {agree}/{positions}, largest log-probability difference {worst:.5}"
    );
    assert!(
        worst <= TOLERANCE,
        "{name}: log-probabilities differ by {worst}"
    );
    assert!(
        agree * 100 >= positions * 99,
        "{name}: top-1 agrees at {agree} of {positions} positions"
    );
    Ok(())
}

#[test]
fn synthetic_llama_matches_llama_cpp() -> Result<()> {
    check("llama-tiny")
}

#[test]
fn synthetic_qwen2_matches_llama_cpp() -> Result<()> {
    check("qwen2-tiny")
}

#[test]
fn synthetic_qwen3_matches_llama_cpp() -> Result<()> {
    check("qwen3-tiny")
}
