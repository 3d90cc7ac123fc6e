//! Ends a parallel tool-call answer at its first repeated call.
//!
//! The parallel grammar lets another call follow each finished one, and a small model may keep
//! taking that branch: SmolLM2-135M answers "Where are my orders 4521 and 4522?" with the two
//! calls and then the second again and again until `max_tokens`. A call repeated with the same
//! arguments in one answer asks for nothing new, so the answer ends there: [`RepeatGuard`]
//! reads each finished call and reports the first that equals an earlier one, the sequence then
//! finishes with `stop`, and the API layer makes each distinct call once.

use serde_json::Value;

use super::grammar::TOOL_CALL_PREFIX;

/// What separates the calls of a parallel answer (see [`super::grammar`]).
const SEPARATOR: &str = "\n<tool_call>";

/// The calls of one answer so far.
#[derive(Debug, Clone, Default)]
pub(super) struct RepeatGuard {
    text: Vec<u8>,
    calls: Vec<Value>,
    repeated: bool,
}

impl RepeatGuard {
    /// Adds a token's bytes; `accepting` says whether the grammar could end after them (then a
    /// call has just closed, or the answer is text).
    pub(super) fn push(&mut self, bytes: &[u8], accepting: bool) {
        self.text.extend_from_slice(bytes);
        if !accepting || self.text.last() != Some(&b'}') {
            return;
        }
        let Ok(text) = std::str::from_utf8(&self.text) else {
            return;
        };
        // Text under `auto` never starts with `<`; a call under `required` may start with `{`.
        if !(text.starts_with(TOOL_CALL_PREFIX) || text.starts_with('{')) {
            return;
        }
        let last = text.rsplit(SEPARATOR).next().unwrap_or(text);
        let last = last.strip_prefix(TOOL_CALL_PREFIX).unwrap_or(last);
        let Ok(call) = serde_json::from_str::<Value>(last) else {
            return;
        };
        if self.calls.contains(&call) {
            self.repeated = true;
        } else {
            self.calls.push(call);
        }
    }

    /// True once a call has repeated an earlier one.
    pub(super) fn repeated(&self) -> bool {
        self.repeated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&str]) -> RepeatGuard {
        let mut g = RepeatGuard::default();
        for p in pieces {
            g.push(p.as_bytes(), p.ends_with('}'));
        }
        g
    }

    #[test]
    fn the_first_repeated_call_is_reported() {
        let a = r#"{"name":"f","arguments":{"id":1}}"#;
        let b = r#"{"name":"f","arguments":{"id":2}}"#;
        assert!(!run(&[a, "\n<tool_call>", b]).repeated());
        assert!(run(&[a, "\n<tool_call>", b, "\n<tool_call>", b]).repeated());
        assert!(run(&["<tool_call>", a, "\n<tool_call>", a]).repeated());
        // Pieces of one call are read once it closes.
        assert!(
            run(&[
                r#"{"name":"f","#,
                r#""arguments":{"id":1}}"#,
                "\n<tool_call>",
                a
            ])
            .repeated()
        );
    }

    #[test]
    fn text_answers_are_left_alone() {
        assert!(!run(&["Hi {", "}", " and {", "}"]).repeated());
    }
}
