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
        tenant: None,
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
        // JSON Schema's integers include `-0`, which serde_json reads as a float.
        Some("get_order") => v["arguments"]["id"]
            .as_f64()
            .is_some_and(|f| f.fract() == 0.0),
        Some("close_ticket") => v["arguments"]["resolved"].is_boolean(),
        _ => false,
    }
}

/// The calls of a parallel tool answer: an optional first marker, then calls each after an
/// optional line break and the marker.
fn calls_of(text: &str) -> Option<Vec<Value>> {
    let text = text.strip_prefix(TOOL_CALL_PREFIX).unwrap_or(text);
    text.split(&format!("\n{TOOL_CALL_PREFIX}"))
        .flat_map(|part| part.split(TOOL_CALL_PREFIX))
        .map(|call| serde_json::from_str(call).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_tool_calls_name_a_tool_and_fit_its_parameters() {
    let (_dir, e) = engine();
    let one = OutputFormat::ToolCall {
        tools: tools(),
        parallel: false,
    };
    let outs = sample(&e, &one, 12, 60).await;
    assert!(outs.iter().any(|(_, r)| *r == FinishReason::Stop));
    for (text, reason) in outs {
        if reason == FinishReason::Stop {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(is_call(&v), "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_required_tool_calls_are_each_a_call() {
    let (_dir, e) = engine();
    let many = OutputFormat::ToolCall {
        tools: tools(),
        parallel: true,
    };
    let outs = sample(&e, &many, 16, 80).await;
    assert!(outs.iter().any(|(_, r)| *r == FinishReason::Stop));
    for (text, reason) in outs {
        if reason == FinishReason::Stop {
            let calls = calls_of(&text).unwrap_or_else(|| panic!("{text}"));
            assert!(!calls.is_empty() && calls.iter().all(is_call), "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_tool_choice_gives_text_or_marked_calls() {
    let (_dir, e) = engine();
    for parallel in [false, true] {
        let format = OutputFormat::TextOrToolCall {
            tools: tools(),
            parallel,
        };
        for (text, reason) in sample(&e, &format, 12, 60).await {
            match text.strip_prefix(TOOL_CALL_PREFIX) {
                Some(call) if reason == FinishReason::Stop && !parallel => {
                    let v: Value = serde_json::from_str(call).unwrap();
                    assert!(is_call(&v), "{text}");
                }
                Some(_) if reason == FinishReason::Stop => {
                    let calls = calls_of(&text).unwrap_or_else(|| panic!("{text}"));
                    assert!(calls.iter().all(is_call), "{text}");
                }
                Some(_) => {}
                None => assert!(!text.starts_with('<'), "{text}"),
            }
        }
    }
}

/// Whether `c` takes the whole of `text` (in the model's tokens) and may end after it.
fn accepts(c: &mut Constraint, text: &str) -> bool {
    let Ok(env) = c.matcher.tok_env() else {
        return false;
    };
    let tokens = env.tokenize_bytes(text.as_bytes());
    c.matcher.validate_tokens(&tokens).ok() == Some(tokens.len())
        && c.matcher.consume_tokens(&tokens).is_ok()
        && c.matcher.is_accepting().unwrap_or(false)
}

#[test]
fn one_call_grammars_refuse_a_second_call() {
    let (_dir, e) = engine();
    let call = r#"{"name":"get_order","arguments":{"id":7}}"#;
    for (format, ok) in [
        (
            OutputFormat::ToolCall {
                tools: tools(),
                parallel: false,
            },
            false,
        ),
        (
            OutputFormat::ToolCall {
                tools: tools(),
                parallel: true,
            },
            true,
        ),
    ] {
        let two = format!("{call}\n{TOOL_CALL_PREFIX}{call}");
        assert!(
            accepts(&mut e.constrain(&format).unwrap(), call),
            "{format:?}"
        );
        assert_eq!(
            accepts(&mut e.constrain(&format).unwrap(), &two),
            ok,
            "{format:?}"
        );
    }
}

#[test]
fn an_integer_without_bounds_ends_within_the_safe_range() {
    let (_dir, e) = engine();
    let format = OutputFormat::JsonSchema(json!({
        "type": "object",
        "properties": { "order_id": { "type": "integer" } },
        "required": ["order_id"]
    }));
    let max = r#"{"order_id":9007199254740991}"#;
    let min = r#"{"order_id":-9007199254740991}"#;
    for (text, ok) in [
        (r#"{"order_id":4521}"#, true),
        (max, true),
        (min, true),
        (r#"{"order_id":9007199254740992}"#, false),
        (r#"{"order_id":45214521452145214521}"#, false),
    ] {
        assert_eq!(
            accepts(&mut e.constrain(&format).unwrap(), text),
            ok,
            "{text}"
        );
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
