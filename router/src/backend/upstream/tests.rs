//! Unit tests of the clients' wire parsers, node URLs and the route table's validation.

use nfai_inference::{FinishReason, GenerateEvent, Usage};

use super::lines::LineParser;
use super::ollama::NdjsonParser;
use super::openai::SseParser;
use crate::config::routing::{Protocol, RoutingConfig, TargetSpec};

fn tok(t: &str) -> GenerateEvent {
    GenerateEvent::Token {
        id: 0,
        text: t.into(),
    }
}

#[test]
fn ollama_lines_become_tokens_and_a_finish() {
    let mut p = NdjsonParser {
        chat: true,
        label: "u".into(),
    };
    let line = r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The","images":null},"done":false}"#;
    assert_eq!(p.line(line), vec![tok("The")]);
    let last = r#"{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"length","total_duration":4883583458,"prompt_eval_count":26,"eval_count":282}"#;
    let usage = Usage {
        prompt_tokens: 26,
        completion_tokens: 282,
        cached_tokens: 0,
    };
    assert_eq!(
        p.line(last),
        vec![GenerateEvent::Finished {
            reason: FinishReason::Length,
            usage,
            text: String::new()
        }]
    );
    let mut g = NdjsonParser {
        chat: false,
        label: "u".into(),
    };
    assert_eq!(
        g.line(r#"{"response":" sky","done":false}"#),
        vec![tok(" sky")]
    );
    assert!(matches!(
        g.line(r#"{"error":"model not found"}"#)[..],
        [GenerateEvent::Failed(_)]
    ));
    assert!(matches!(g.line("not json")[..], [GenerateEvent::Failed(_)]));
}

#[test]
fn sse_chunks_finish_at_done_with_usage() {
    let mut p = SseParser::new(true, "u".into());
    assert_eq!(
        p.line(r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#),
        vec![]
    );
    assert_eq!(
        p.line(r#"data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#),
        vec![tok("Hi")]
    );
    assert_eq!(
        p.line(r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#),
        vec![]
    );
    assert_eq!(
        p.line(r#"data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#),
        vec![]
    );
    assert_eq!(p.line(": keep-alive"), vec![]);
    let usage = Usage {
        prompt_tokens: 3,
        completion_tokens: 1,
        cached_tokens: 0,
    };
    assert_eq!(
        p.line("data: [DONE]"),
        vec![GenerateEvent::Finished {
            reason: FinishReason::Stop,
            usage,
            text: String::new()
        }]
    );
    // A stream that ends without a finish reason is broken, not finished.
    let mut p = SseParser::new(false, "u".into());
    assert_eq!(
        p.line(r#"data: {"choices":[{"text":"a"}]}"#),
        vec![tok("a")]
    );
    assert!(p.eof().is_none());
    assert!(matches!(
        p.line("data: [DONE]")[..],
        [GenerateEvent::Failed(_)]
    ));
}

#[test]
fn sse_chunks_with_null_fields_and_escapes_are_read_and_errors_end_the_stream() {
    let mut p = SseParser::new(true, "u".into());
    let line = r#"data: {"id":"c","choices":[{"index":0,"delta":{"content":"caf\u00e9 \"x\"\n"},"logprobs":null,"finish_reason":null}],"usage":null,"error":null}"#;
    assert_eq!(p.line(line), vec![tok("caf\u{e9} \"x\"\n")]);
    assert_eq!(p.line(r#"data: {"choices":null}"#), vec![]);
    assert!(matches!(
        p.line(r#"data: {"error":{"message":"model crashed"}}"#)[..],
        [GenerateEvent::Failed(nfai_inference::EngineError::Compute(ref m))] if m.contains("model crashed")
    ));
    let mut p = SseParser::new(true, "u".into());
    assert!(matches!(
        p.line("data: {not json")[..],
        [GenerateEvent::Failed(_)]
    ));
}

#[test]
fn targets_parse_and_the_table_validates() {
    assert_eq!(
        TargetSpec::parse("ollama:gpu/llama3.1:8b").unwrap(),
        TargetSpec::Upstream {
            protocol: Protocol::Ollama,
            upstream: "gpu".into(),
            model: "llama3.1:8b".into()
        }
    );
    assert_eq!(
        TargetSpec::parse("native:gemma3").unwrap(),
        TargetSpec::Native {
            id: "gemma3".into()
        }
    );
    for bad in ["gemma", "ollama:gpu", "openai:/m", "http:x/y", "native:"] {
        assert!(TargetSpec::parse(bad).is_err(), "{bad}");
    }
    let catalog = crate::catalog::Catalog::with_overrides(Vec::new()).unwrap();
    let file: crate::config::FileConfig = toml::from_str(
        "[[upstreams]]\nname = \"gpu\"\nnodes = [\"http://10.0.0.2:11434/\", { url = \"http://10.0.0.3:11434\", max_concurrency = 2 }]\napi_key = \"sk-secret\"\n\
         [[routes]]\nmodel = \"big\"\naliases = [\"large\"]\ntargets = [\"ollama:gpu/llama3.1:70b\", \"native:gemma-3-270m\"]\n",
    )
    .unwrap();
    let cfg =
        RoutingConfig::from_file(file.upstreams, file.routes, file.routing, &catalog).unwrap();
    assert_eq!(cfg.retries, 2);
    assert_eq!(
        cfg.upstreams[0].nodes,
        vec![
            ("http://10.0.0.2:11434".to_string(), 64),
            ("http://10.0.0.3:11434".to_string(), 2)
        ]
    );
    assert_eq!(cfg.routes[0].kind, "chat");
    let debug = format!("{:?}", cfg.upstreams[0]);
    assert!(
        !debug.contains("sk-secret") && debug.contains("redacted"),
        "{debug}"
    );
}

#[test]
fn node_urls_join_api_paths_after_their_prefix() {
    use super::http::BaseUri;
    let plain = BaseUri::parse("http://10.0.0.2:11434").unwrap();
    assert_eq!(
        plain.join("/api/chat").unwrap().to_string(),
        "http://10.0.0.2:11434/api/chat"
    );
    let prefixed = BaseUri::parse("https://gateway.example/openai/").unwrap();
    assert_eq!(
        prefixed.join("/v1/models").unwrap().to_string(),
        "https://gateway.example/openai/v1/models"
    );
    assert!(BaseUri::parse("10.0.0.2:11434/x").is_err());
    assert!(plain.join("/bad path").is_err());
}
