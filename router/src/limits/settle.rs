//! [`SettledBody`]: wraps an answer's body, passes every frame through unchanged, and reads the
//! real usage out of it on the way: the `usage` object of an OpenAI JSON answer or SSE chunk,
//! or `prompt_eval_count` / `eval_count` of an Ollama answer or NDJSON line. When the body ends
//! (or the client goes away) the [`Ticket`] is settled with what was seen: the reported usage,
//! else the estimated prompt plus one token per streamed chunk.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http_body::Frame;
use serde_json::Value;

use crate::limits::limiter::Ticket;

/// Bytes of one line (or a whole JSON answer) kept for reading the usage.
const MAX_LINE: usize = 4 << 20;

/// What the answer said about its usage so far.
#[derive(Debug, Default)]
struct Seen {
    prompt: Option<u64>,
    completion: Option<u64>,
    chunks: u64,
}

impl Seen {
    fn read(&mut self, text: &[u8]) {
        let text = text.strip_prefix(b"data:").unwrap_or(text);
        let Ok(v) = serde_json::from_slice::<Value>(text) else {
            return;
        };
        self.chunks += 1;
        let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64);
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.prompt = num(u, "prompt_tokens")
                .or(num(u, "input_tokens"))
                .or(self.prompt);
            self.completion = num(u, "completion_tokens")
                .or(num(u, "output_tokens"))
                .or(Some(0));
        }
        if let Some(p) = num(&v, "prompt_eval_count") {
            self.prompt = Some(p);
            self.completion = Some(num(&v, "eval_count").unwrap_or(0));
        }
    }
}

/// A body that settles its ticket when it ends.
pub struct SettledBody {
    inner: Body,
    ticket: Option<Ticket>,
    prompt_estimate: u64,
    /// The answer failed: only the prompt is charged.
    failed: bool,
    line: Vec<u8>,
    seen: Seen,
}

impl std::fmt::Debug for SettledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettledBody").finish_non_exhaustive()
    }
}

impl SettledBody {
    /// Wraps `inner`; a `failed` answer (an error status) settles at zero tokens.
    pub fn new(inner: Body, ticket: Ticket, prompt_estimate: u64, failed: bool) -> Self {
        Self {
            inner,
            ticket: Some(ticket),
            prompt_estimate,
            failed,
            line: Vec::new(),
            seen: Seen::default(),
        }
    }

    fn feed(&mut self, data: &Bytes) {
        if self.failed {
            return;
        }
        for &b in data.iter() {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                let t = line.trim_ascii();
                if !t.is_empty() {
                    self.seen.read(t);
                }
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            }
        }
    }

    fn finish(&mut self) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        if self.failed {
            ticket.settle(0, 0);
            return;
        }
        let rest = std::mem::take(&mut self.line);
        if !rest.trim_ascii().is_empty() {
            self.seen.read(rest.trim_ascii());
        }
        let prompt = self.seen.prompt.unwrap_or(self.prompt_estimate);
        let completion = self.seen.completion.unwrap_or(self.seen.chunks);
        ticket.settle(prompt, completion);
    }
}

impl Drop for SettledBody {
    fn drop(&mut self) {
        self.finish();
    }
}

impl http_body::Body for SettledBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.feed(data);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_from_json_sse_and_ndjson() {
        let mut s = Seen::default();
        s.read(br#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":9}}"#);
        assert_eq!((s.prompt, s.completion), (Some(7), Some(9)));
        let mut s = Seen::default();
        s.read(br#"data: {"choices":[{"delta":{"content":"a"}}],"usage":null}"#);
        s.read(b"data: [DONE]");
        assert_eq!((s.prompt, s.completion, s.chunks), (None, None, 1));
        let mut s = Seen::default();
        s.read(br#"{"done":true,"prompt_eval_count":4,"eval_count":2}"#);
        assert_eq!((s.prompt, s.completion), (Some(4), Some(2)));
    }
}
