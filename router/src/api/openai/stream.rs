//! Server-sent events for streamed completions.
//!
//! The SSE body owns the backends' event streams: when the client disconnects, axum drops the
//! body, the streams close, and a native engine drops the sequences at its next step. Several
//! receivers (one per prompt) are merged; the stream ends with a usage chunk when asked for and
//! `data: [DONE]`, or with an error event if an engine fails or stops mid-stream.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, BoxStream, SelectAll, StreamExt};
use nfai_inference::{FinishReason, GenerateEvent};

use super::wire::Usage;
use crate::backend::EventStream;
use crate::backend::error::BackendError;
use crate::error::ApiError;

/// Renders the JSON of each chunk kind for one API.
pub trait ChunkWriter: Send + 'static {
    /// Chunks sent before any token (the role delta of chat, echoed prompts of completions).
    fn start(&self, choices: usize) -> Vec<String>;
    fn token(&self, index: usize, text: &str) -> String;
    fn finish(&self, index: usize, reason: FinishReason) -> String;
    fn usage(&self, usage: Usage) -> String;
}

type Tagged = (usize, Option<GenerateEvent>);

struct Driver<W> {
    writer: W,
    merged: SelectAll<BoxStream<'static, Tagged>>,
    queue: VecDeque<String>,
    finished: Vec<bool>,
    usage: Usage,
    include_usage: bool,
    ended: bool,
}

/// An SSE response streaming the events of `streams` (choice `i` is `streams[i]`).
pub fn sse<W: ChunkWriter>(writer: W, streams: Vec<EventStream>, include_usage: bool) -> Response {
    let n = streams.len();
    let merged = stream::select_all(streams.into_iter().enumerate().map(|(i, events)| {
        events
            .map(move |e| (i, Some(e)))
            .chain(stream::once(async move { (i, None) }))
            .boxed()
    }));
    let driver = Driver {
        queue: writer.start(n).into(),
        writer,
        merged,
        finished: vec![false; n],
        usage: Usage::new(0, 0),
        include_usage,
        ended: false,
    };
    let events = stream::unfold(driver, |mut d| async move {
        loop {
            if let Some(data) = d.queue.pop_front() {
                return Some((Ok::<_, Infallible>(Event::default().data(data)), d));
            }
            if d.ended {
                return None;
            }
            d.advance().await;
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

impl<W: ChunkWriter> Driver<W> {
    async fn advance(&mut self) {
        match self.merged.next().await {
            Some((i, Some(GenerateEvent::Token { text, .. }))) => {
                if !text.is_empty() {
                    self.queue.push_back(self.writer.token(i, &text));
                }
            }
            Some((
                i,
                Some(GenerateEvent::Finished {
                    reason,
                    usage,
                    text,
                }),
            )) => {
                if !text.is_empty() {
                    self.queue.push_back(self.writer.token(i, &text));
                }
                self.queue.push_back(self.writer.finish(i, reason));
                self.usage.add(&usage);
                if let Some(f) = self.finished.get_mut(i) {
                    *f = true;
                }
            }
            Some((_, Some(GenerateEvent::Failed(e)))) => {
                self.queue.push_back(ApiError::from(e).to_json());
                self.ended = true;
            }
            Some((i, None)) => {
                if !self.finished.get(i).copied().unwrap_or(true) {
                    let e = ApiError::from(BackendError::EngineStopped(
                        "The model's engine stopped mid-stream.".into(),
                    ));
                    self.queue.push_back(e.to_json());
                    self.ended = true;
                }
            }
            None => {
                if self.include_usage {
                    self.queue.push_back(self.writer.usage(self.usage));
                }
                self.queue.push_back("[DONE]".to_string());
                self.ended = true;
            }
        }
    }
}
