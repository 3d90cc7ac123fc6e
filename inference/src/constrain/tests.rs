//! Constrained generation on a tiny synthetic Llama (random weights, near-flat logits, so every
//! sample at temperature 1 wanders wherever the grammar lets it): the output always follows the
//! grammar when it ends with `stop`, runs cut short end with `length`, and bad schemas are
//! refused at compile time.

use candle_core::Device;
use candle_core::quantized::GgmlDType;
use nfai_models::load_gguf_lm;
use nfai_models::synth::{SynthShape, write_synthetic};
use serde_json::{Value, json};

use super::*;
use crate::{
    FinishReason, GenerateEvent, GenerateRequest, GenerationConfig, GenerationEngine,
    SamplingParams,
};

fn engine() -> (tempfile::TempDir, GenerationEngine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llama-tiny.gguf");
    let shape = SynthShape::preset("llama-tiny").unwrap();
    write_synthetic(&path, "llama-tiny", &shape, GgmlDType::Q8_0, 5, |_, _| {}).unwrap();
    let lm = load_gguf_lm(&path, &Device::Cpu, 512, None).unwrap();
    let config = GenerationConfig {
        max_batch: 8,
        ..GenerationConfig::default()
    };
    let e = GenerationEngine::start("tiny", lm.model, lm.tokenizer, config).unwrap();
    (dir, e)
}

fn request(e: &GenerationEngine, format: &OutputFormat, seed: u64, max: usize) -> GenerateRequest {
    GenerateRequest {
        prompt_ids: vec![2, 40, 41, 42],
        max_new_tokens: max,
        sampling: SamplingParams {
            temperature: 1.0,
            seed: Some(seed),
            ..SamplingParams::default()
        },
        stop: Vec::new(),
        ignore_eos: false,
        constraint: Some(e.constrain(format).unwrap()),
    }
}

/// Runs `n` sampled generations together; returns (text, finish reason) of each.
async fn sample(
    e: &GenerationEngine,
    format: &OutputFormat,
    n: u64,
    max: usize,
) -> Vec<(String, FinishReason)> {
    let receivers: Vec<_> = (0..n)
        .map(|seed| e.submit(request(e, format, seed, max)).unwrap())
        .collect();
    let mut out = Vec::new();
    for mut rx in receivers {
        let mut text = String::new();
        loop {
            match rx.recv().await.unwrap() {
                GenerateEvent::Token { text: t, .. } => text.push_str(&t),
                GenerateEvent::Finished {
                    reason, text: t, ..
                } => {
                    text.push_str(&t);
                    out.push((text, reason));
                    break;
                }
                GenerateEvent::Failed(err) => panic!("generation failed: {err}"),
            }
        }
    }
    out
}

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "maxLength": 6 },
            "age": { "type": "integer", "minimum": 0, "maximum": 120 },
            "tier": { "enum": ["gold", "silver"] }
        },
        "required": ["name", "age", "tier"],
        "additionalProperties": false
    })
}

fn is_person(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    o.len() == 3
        && o["name"].as_str().is_some_and(|s| s.chars().count() <= 6)
        && o["age"].as_i64().is_some_and(|a| (0..=120).contains(&a))
        && matches!(o["tier"].as_str(), Some("gold" | "silver"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_outputs_follow_the_schema_or_end_with_length() {
    let (_dir, e) = engine();
    let format = OutputFormat::JsonSchema(person_schema());
    let outs = sample(&e, &format, 24, 120).await;
    let stopped: Vec<_> = outs
        .iter()
        .filter(|(_, r)| *r == FinishReason::Stop)
        .collect();
    assert!(!stopped.is_empty(), "no run finished: {outs:?}");
    for (text, _) in stopped {
        let v: Value = serde_json::from_str(text).unwrap_or_else(|err| panic!("{text:?}: {err}"));
        assert!(is_person(&v), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_object_mode_gives_objects_and_short_runs_end_with_length() {
    let (_dir, e) = engine();
    for (text, reason) in sample(&e, &OutputFormat::JsonObject, 8, 60).await {
        if reason == FinishReason::Stop {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(v.is_object(), "{text}");
        } else {
            assert!(text.starts_with('{'), "{text}");
        }
    }
    for (text, reason) in sample(&e, &OutputFormat::JsonSchema(person_schema()), 4, 3).await {
        assert_eq!(reason, FinishReason::Length, "{text}");
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    }
}

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "get_order".into(),
            parameters: json!({
                "type": "object",
                "properties": { "id": { "type": "integer" } },
                "required": ["id"],
                "additionalProperties": false
            }),
        },
        ToolSpec {
            name: "close_ticket".into(),
            parameters: json!({
                "type": "object",
                "properties": { "resolved": { "type": "boolean" } },
                "required": ["resolved"],
                "additionalProperties": false
            }),
        },
    ]
}

fn is_call(v: &Value) -> bool {
    match v["name"].as_str() {
        Some("get_order") => v["arguments"]["id"].is_i64(),
        Some("close_ticket") => v["arguments"]["resolved"].is_boolean(),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_tool_calls_name_a_tool_and_fit_its_parameters() {
    let (_dir, e) = engine();
    let outs = sample(&e, &OutputFormat::ToolCall(tools()), 12, 60).await;
    assert!(outs.iter().any(|(_, r)| *r == FinishReason::Stop));
    for (text, reason) in outs {
        if reason == FinishReason::Stop {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(is_call(&v), "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_tool_choice_gives_text_or_a_marked_call() {
    let (_dir, e) = engine();
    for (text, reason) in sample(&e, &OutputFormat::TextOrToolCall(tools()), 12, 40).await {
        match text.strip_prefix(TOOL_CALL_PREFIX) {
            Some(call) if reason == FinishReason::Stop => {
                let v: Value = serde_json::from_str(call).unwrap();
                assert!(is_call(&v), "{text}");
            }
            Some(_) => {}
            None => assert!(!text.starts_with('<'), "{text}"),
        }
    }
}

#[test]
fn schemas_the_engine_cannot_compile_are_refused() {
    let (_dir, e) = engine();
    for bad in [
        json!({ "type": "objekt" }),
        json!({ "$ref": "#/$defs/missing" }),
        json!({ "type": "string", "pattern": "(" }),
    ] {
        let err = e.constrain(&OutputFormat::JsonSchema(bad.clone()));
        assert!(err.is_err(), "{bad} compiled");
    }
    assert!(e.constrain(&OutputFormat::JsonSchema(json!({}))).is_ok());
}
