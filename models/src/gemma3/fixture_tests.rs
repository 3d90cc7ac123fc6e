//! Greedy decoding of the real Gemma 3 270M compared with llama.cpp's reference fixtures
//! (`tests/fixtures/gemma-3-270m/greedy.json`, produced by `scripts/llama-cpp-fixtures.sh`).

use serde::Deserialize;

use super::real_tests::{greedy_batch, real_lm};
use crate::Result;

#[derive(Debug, Deserialize)]
struct GreedyFixture {
    cases: Vec<GreedyCase>,
}

#[derive(Debug, Deserialize)]
struct GreedyCase {
    name: String,
    prompt: String,
    prompt_ids: Vec<u32>,
    completion_ids: Vec<u32>,
    #[serde(default)]
    completion_top2_margins: Vec<f32>,
}

/// Reads a fixture file of `tests/fixtures/gemma-3-270m/`.
pub(crate) fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/gemma-3-270m")
        .join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => panic!(
            "{}: {e} (regenerate with scripts/llama-cpp-fixtures.sh)",
            path.display()
        ),
    }
}

#[test]
fn real_greedy_matches_llama_cpp() -> Result<()> {
    let fx: GreedyFixture = serde_json::from_str(&fixture("greedy.json"))
        .map_err(|e| crate::ModelError::Format(format!("greedy.json: {e}")))?;
    let lm = real_lm();
    let mut failures = Vec::new();
    for case in &fx.cases {
        assert_eq!(
            lm.tokenizer.encode(&case.prompt, true)?,
            case.prompt_ids,
            "{}: prompt ids",
            case.name
        );
        let got = greedy_batch(
            lm.model.as_ref(),
            std::slice::from_ref(&case.prompt_ids),
            case.completion_ids.len(),
        )?
        .remove(0);
        if let Some(i) = got.iter().zip(&case.completion_ids).position(|(a, b)| a != b) {
            failures.push(format!(
                "{}: first difference at token {i} (llama.cpp margin there {:?}): got {:?}, want {:?}",
                case.name,
                case.completion_top2_margins.get(i),
                &got[i..],
                &case.completion_ids[i..]
            ));
        } else {
            println!("{}: {} tokens identical", case.name, got.len());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
