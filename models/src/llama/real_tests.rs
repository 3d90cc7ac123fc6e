//! Tests against the real SmolLM2-135M-Instruct GGUF (`nfai models fetch` downloads it): greedy
//! decoding and tokenization equal llama.cpp's fixtures (`tests/fixtures/smollm2-135m-instruct/`,
//! made by `scripts/llama-cpp-fixtures.sh`), its own chat template, and batch independence.

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::Device;

use crate::gemma3::fixture_tests::{fixture_in, greedy_matches_llama_cpp};
use crate::lm::BatchEntry;
use crate::loader::{LoadedLm, load_gguf_lm};
use crate::{ChatMessage, ModelError, Result};

const FIXTURES: &str = "smollm2-135m-instruct";

/// Path of the real model; panics with instructions when it is missing.
pub(crate) fn smollm2_path() -> PathBuf {
    let path = crate::default_model_dir()
        .join("smollm2-135m-instruct")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `nfai models fetch` (or set NFAI_MODEL_DIR) first",
        path.display()
    );
    path
}

/// The real model, loaded once per test process with a 2048-position context.
pub(crate) fn smollm2() -> &'static LoadedLm {
    static LM: OnceLock<std::result::Result<LoadedLm, String>> = OnceLock::new();
    let loaded = LM.get_or_init(|| {
        load_gguf_lm(&smollm2_path(), &Device::Cpu, 2048, None).map_err(|e| e.to_string())
    });
    match loaded {
        Ok(lm) => lm,
        Err(e) => panic!("loading SmolLM2 failed: {e}"),
    }
}

/// Positions up to which greedy decoding must equal llama.cpp's exactly. From 512 keys on,
/// llama.cpp splits a decode step's attention across its threads and merges the partial
/// softmaxes (`use_split_kv_path`), which rounds differently and depends on its thread count;
/// past that, tokens may differ only at near-ties. Prefill itself matches bit for bit at any
/// length (see `layers::ggml_flash_tiled`).
const EXACT_UP_TO: usize = 512;

#[test]
fn smollm2_greedy_matches_llama_cpp() -> Result<()> {
    greedy_matches_llama_cpp(smollm2(), FIXTURES, EXACT_UP_TO)
}

#[derive(Debug, serde::Deserialize)]
struct TokenizeFixture {
    cases: Vec<TokenizeCase>,
}

#[derive(Debug, serde::Deserialize)]
struct TokenizeCase {
    text: String,
    ids: Vec<u32>,
}

/// SmolLM2's byte-level BPE (its `smollm` pre-tokenizer splits every digit) equals llama.cpp's
/// `/tokenize` on every fixture string, and decodes back to it.
#[test]
fn smollm2_tokenizer_matches_llama_cpp() -> Result<()> {
    let fx: TokenizeFixture = serde_json::from_str(&fixture_in(FIXTURES, "tokenize.json"))
        .map_err(|e| ModelError::Format(format!("tokenize.json: {e}")))?;
    let t = &smollm2().tokenizer;
    let mut wrong = Vec::new();
    for case in &fx.cases {
        let ids = t.encode(&case.text, true)?;
        if ids != case.ids {
            wrong.push(format!(
                "{:?}: got {ids:?}, llama.cpp {:?}",
                case.text, case.ids
            ));
        }
        let back = t.decode(&case.ids, false)?;
        if back != case.text {
            wrong.push(format!("{:?}: decodes back as {back:?}", case.text));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    Ok(())
}

/// The template comes from the file (ChatML, with the model's default system prompt when none
/// is given), and both end-of-turn markers stop generation.
#[test]
fn smollm2_uses_its_own_chat_template() -> Result<()> {
    let lm = smollm2();
    assert_eq!(lm.model.info().architecture, "llama");
    assert!(lm.chat_template.is_available());
    let prompt = lm.chat_template.render(
        &[
            ChatMessage::new("system", "You are a CRM assistant."),
            ChatMessage::new("user", "Hi"),
        ],
        true,
    )?;
    assert_eq!(
        prompt,
        "<|im_start|>system\nYou are a CRM assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let bare = lm
        .chat_template
        .render(&[ChatMessage::new("user", "Hi")], true)?;
    assert!(bare.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    let eos = &lm.model.info().eos_token_ids;
    assert!(eos.contains(&2) && eos.contains(&0), "{eos:?}");
    Ok(())
}

/// Greedy decoding of three prompts in one batch gives each prompt's own output.
#[test]
fn smollm2_batched_greedy_equals_single() -> Result<()> {
    let lm = smollm2();
    let model = lm.model.as_ref();
    let prompts: Vec<Vec<u32>> = ["The capital of France is", "1, 2, 3,", "Dear customer,"]
        .iter()
        .map(|p| lm.tokenizer.encode(p, true))
        .collect::<Result<_>>()?;
    let batched = crate::gemma3::real_tests::greedy_batch(model, &prompts, 6)?;
    for (p, got) in prompts.iter().zip(&batched) {
        let alone = crate::gemma3::real_tests::greedy_batch(model, std::slice::from_ref(p), 6)?;
        assert_eq!(&alone[0], got);
    }
    let mut cache = model.new_cache();
    let logits = model.forward(&mut [BatchEntry {
        tokens: &prompts[0],
        cache: &mut cache,
    }])?;
    assert_eq!(logits.dims(), &[1, 49_152]);
    Ok(())
}
