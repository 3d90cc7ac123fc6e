//! Upstream response bodies as events: NDJSON or SSE split into lines, each line handed to a
//! per-stream parser, and a body that breaks, stalls past the total timeout or ends before its
//! final event turned into a `Failed` event, never a silent end.

use std::collections::VecDeque;

use axum::body::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use nfai_inference::{EngineError, GenerateEvent};
use tokio::time::Instant;

use crate::backend::EventStream;

/// Turns body lines into events; stateful per stream.
pub trait LineParser: Send + 'static {
    /// Events for one non-empty line; a `Finished` or `Failed` ends the stream.
    fn line(&mut self, line: &str) -> Vec<GenerateEvent>;
    /// The body ended without a final event: a `Finished` if the parser saw enough, else none.
    fn eof(&mut self) -> Option<GenerateEvent> {
        None
    }
}

fn broke(label: &str, why: &str) -> GenerateEvent {
    GenerateEvent::Failed(EngineError::Compute(format!(
        "{label}: the stream broke: {why}"
    )))
}

struct LineState<P> {
    body: BoxStream<'static, Result<Bytes, hyper::Error>>,
    until: Instant,
    buf: Vec<u8>,
    pending: VecDeque<GenerateEvent>,
    parser: P,
    label: String,
    done: bool,
}

/// The response body as events, line by line (NDJSON or SSE); reading stops at `until`.
pub fn line_events<P: LineParser>(
    body: Incoming,
    label: String,
    until: Instant,
    parser: P,
) -> EventStream {
    let state = LineState {
        body: body.into_data_stream().boxed(),
        until,
        buf: Vec::new(),
        pending: VecDeque::new(),
        parser,
        label,
        done: false,
    };
    stream::unfold(state, |mut s| async move {
        loop {
            if let Some(ev) = s.pending.pop_front() {
                if matches!(
                    ev,
                    GenerateEvent::Finished { .. } | GenerateEvent::Failed(_)
                ) {
                    s.pending.clear();
                    s.done = true;
                }
                return Some((ev, s));
            }
            if s.done {
                return None;
            }
            if let Some(pos) = s.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = s.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if !text.is_empty() {
                    s.pending.extend(s.parser.line(text));
                }
                continue;
            }
            match tokio::time::timeout_at(s.until, s.body.next()).await {
                Err(_) => {
                    let why = "the upstream's total timeout passed";
                    s.pending.push_back(broke(&s.label, why));
                }
                Ok(Some(Ok(chunk))) => s.buf.extend_from_slice(&chunk),
                Ok(Some(Err(e))) => {
                    s.pending.push_back(broke(&s.label, &source_chain(&e)));
                }
                Ok(None) => {
                    let rest = String::from_utf8_lossy(&std::mem::take(&mut s.buf))
                        .trim()
                        .to_string();
                    if !rest.is_empty() {
                        s.pending.extend(s.parser.line(&rest));
                        if !s.pending.is_empty() {
                            continue;
                        }
                    }
                    let last = s.parser.eof().unwrap_or_else(|| {
                        broke(
                            &s.label,
                            "the upstream closed it before the generation finished",
                        )
                    });
                    s.pending.push_back(last);
                }
            }
        }
    })
    .boxed()
}

/// An error and its sources, joined with `: `.
pub fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
