//! Tool calls out of generated text: the answer of a tool grammar becomes OpenAI's
//! `tool_calls` (with `finish_reason` `tool_calls`), in one JSON body or in a stream.
//!
//! In a stream, text that may be a call is held back until the generation ends: the whole
//! answer under `tool_choice` `required` or a named tool, and under `auto` an answer whose first
//! character is `<` (the grammar lets plain text start with anything else). Plain text streams
//! as it comes.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use nfai_inference::GenerateEvent;
use nfai_inference::constrain::TOOL_CALL_PREFIX;

use super::wire::chat::{FunctionCallOut, ToolCallOut};
use crate::backend::EventStream;
use crate::backend::structured::read_calls;
use crate::validate::structured::ToolMode;

/// The calls in `text`, if the whole text is calls: one or more `{"name": …, "arguments": {…}}`,
/// each after the call marker (under `required` the first call's marker may be left out). A
/// call repeated with the same arguments is made once (the native engine ends a parallel answer
/// at its first repeat: see `nfai_inference::constrain`).
pub fn parse(mode: ToolMode, text: &str) -> Option<Vec<ToolCallOut>> {
    let mut calls = match (mode, read_calls(text)) {
        (_, Some(calls)) => calls,
        (ToolMode::Required, None) => {
            read_calls(&format!("{TOOL_CALL_PREFIX}{}", text.trim_start()))?
        }
        (ToolMode::Auto, None) => return None,
    };
    let mut seen = Vec::with_capacity(calls.len());
    calls.retain(|call| {
        let new = !seen.contains(call);
        if new {
            seen.push(call.clone());
        }
        new
    });
    Some(
        calls
            .into_iter()
            .map(|call| ToolCallOut {
                index: None,
                id: crate::api::openai::wire::new_call_id(),
                kind: "function",
                function: FunctionCallOut {
                    name: call.name,
                    arguments: call.arguments,
                },
            })
            .collect(),
    )
}

/// Text held back from a stream, shared with the chunk writer that releases it at the end.
#[derive(Debug, Clone, Default)]
pub struct HeldText(Arc<Mutex<Option<String>>>);

impl HeldText {
    /// The held text, if the stream held any.
    pub fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut t| t.take())
    }

    fn push(&self, text: &str) {
        if let Ok(mut t) = self.0.lock() {
            t.get_or_insert_with(String::new).push_str(text);
        }
    }

    fn is_holding(&self) -> bool {
        self.0.lock().is_ok_and(|t| t.is_some())
    }
}

/// `events` with the text of a possible call moved into `held` (the events keep their token
/// ids and usage, with empty text).
pub fn hold_calls(events: EventStream, mode: ToolMode, held: HeldText) -> EventStream {
    let mut decided = mode == ToolMode::Required;
    if decided {
        held.push("");
    }
    events
        .map(move |e| {
            let text = match &e {
                GenerateEvent::Token { text, .. } | GenerateEvent::Finished { text, .. } => text,
                GenerateEvent::Failed(_) => return e,
            };
            if !decided && !text.is_empty() {
                decided = true;
                if text.starts_with('<') {
                    held.push("");
                }
            }
            if !held.is_holding() {
                return e;
            }
            held.push(text);
            match e {
                GenerateEvent::Token { id, .. } => GenerateEvent::Token {
                    id,
                    text: String::new(),
                },
                GenerateEvent::Finished { reason, usage, .. } => GenerateEvent::Finished {
                    reason,
                    usage,
                    text: String::new(),
                },
                other => other,
            }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_parsed_in_either_mode() {
        let c = parse(ToolMode::Required, r#"{"name":"f","arguments":{"a":1}}"#).unwrap();
        assert_eq!(c[0].function.name, "f");
        assert_eq!(c[0].function.arguments, r#"{"a":1}"#);
        assert!(c[0].id.starts_with("call_"), "{}", c[0].id);
        let c = parse(ToolMode::Auto, r#"<tool_call>{"name":"g","arguments":{}}"#).unwrap();
        assert_eq!(c[0].function.name, "g");
        let two =
            r#"<tool_call>{"name":"g","arguments":{}}<tool_call>{"name":"h","arguments":{"x":1}}"#;
        for mode in [ToolMode::Auto, ToolMode::Required] {
            let c = parse(mode, two).unwrap();
            assert_eq!((c.len(), c[1].function.name.as_str()), (2, "h"));
            assert_ne!(c[0].id, c[1].id);
        }
        // The parallel grammar's line break between calls; under `required` the first marker
        // may be missing.
        let lines =
            "{\"name\":\"g\",\"arguments\":{}}\n<tool_call>{\"name\":\"h\",\"arguments\":{}}";
        let c = parse(ToolMode::Required, lines).unwrap();
        assert_eq!((c.len(), c[1].function.name.as_str()), (2, "h"));
        assert!(parse(ToolMode::Auto, lines).is_none());
        assert!(parse(ToolMode::Required, &format!("{lines} and text")).is_none());
        let again = format!("{lines}\n<tool_call>{{\"name\":\"g\",\"arguments\":{{}}}}");
        let c = parse(ToolMode::Required, &again).unwrap();
        assert_eq!(c.len(), 2, "{again}");
        assert!(parse(ToolMode::Auto, r#"{"name":"g","arguments":{}}"#).is_none());
        assert!(parse(ToolMode::Required, r#"{"name":"g","argu"#).is_none());
        assert!(parse(ToolMode::Auto, "Hello").is_none());
        // The arguments are passed on as written: an integer beyond 64 bits keeps its digits.
        let big = r#"{"name":"f","arguments":{"order_id":37896812804689686123456789}}"#;
        let c = parse(ToolMode::Required, big).unwrap();
        assert_eq!(
            c[0].function.arguments,
            r#"{"order_id":37896812804689686123456789}"#
        );
    }

    #[tokio::test]
    async fn streams_hold_back_calls_and_pass_text() {
        use nfai_inference::{FinishReason, Usage};
        let events = |texts: &[&str]| -> EventStream {
            let mut v: Vec<GenerateEvent> = texts
                .iter()
                .map(|t| GenerateEvent::Token {
                    id: 1,
                    text: (*t).to_string(),
                })
                .collect();
            v.push(GenerateEvent::Finished {
                reason: FinishReason::Stop,
                usage: Usage::default(),
                text: String::new(),
            });
            futures::stream::iter(v).boxed()
        };
        let text_of = |evs: Vec<GenerateEvent>| -> String {
            evs.into_iter()
                .map(|e| match e {
                    GenerateEvent::Token { text, .. } | GenerateEvent::Finished { text, .. } => {
                        text
                    }
                    GenerateEvent::Failed(_) => String::new(),
                })
                .collect()
        };
        let held = HeldText::default();
        let out: Vec<_> = hold_calls(events(&["", "Hi", " there"]), ToolMode::Auto, held.clone())
            .collect()
            .await;
        assert_eq!(text_of(out), "Hi there");
        assert_eq!(held.take(), None);
        let held = HeldText::default();
        let out: Vec<_> = hold_calls(events(&["<tool", "_call>{}"]), ToolMode::Auto, held.clone())
            .collect()
            .await;
        assert_eq!(text_of(out), "");
        assert_eq!(held.take().as_deref(), Some("<tool_call>{}"));
        let held = HeldText::default();
        let out: Vec<_> = hold_calls(events(&["{", "}"]), ToolMode::Required, held.clone())
            .collect()
            .await;
        assert_eq!(text_of(out), "");
        assert_eq!(held.take().as_deref(), Some("{}"));
    }
}
