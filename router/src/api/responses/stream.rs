//! The Responses API's server-sent events: `event: <type>` and a JSON `data` carrying the same
//! `type` and a `sequence_number` counted from 0, in this order:
//!
//! `response.created`, `response.in_progress`; with a file search, `response.output_item.added`
//! (the `file_search_call`), `response.file_search_call.in_progress`, `.searching`,
//! `.completed`, `response.output_item.done`; then `response.output_item.added` (the message),
//! `response.content_part.added`, `response.output_text.delta` (many),
//! `response.output_text.annotation.added` (one per citation), `response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done`, and `response.completed` (or
//! `response.incomplete` when `max_output_tokens` cut the answer).
//!
//! The search runs between `.searching` and `.completed`, and the answer starts after it. A
//! failure of the search (the item then ends `failed`), of the model's start or of the model
//! mid-stream ends the stream with an `error` event and `response.failed`.
//!
//! A task writes the events into a bounded channel that the body reads; when the client goes,
//! the body and the channel's receiver are dropped, the next send fails, and the task drops
//! the generation, which cancels it.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use nfai_inference::{FinishReason, GenerateEvent};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::object::{self, Draft};
use super::plan::Plan;
use crate::backend::error::BackendError;
use crate::error::ApiError;
use crate::responses::cite::Citer;

/// Events buffered between the writer task and the body.
const BUFFER: usize = 64;

/// The client has gone.
struct Gone;

struct Writer {
    tx: mpsc::Sender<Event>,
    seq: u64,
}

impl Writer {
    async fn send(&mut self, kind: &str, mut data: Value) -> Result<(), Gone> {
        if let Some(o) = data.as_object_mut() {
            o.insert("type".into(), json!(kind));
            o.insert("sequence_number".into(), json!(self.seq));
        }
        self.seq += 1;
        let event = Event::default().event(kind).data(data.to_string());
        self.tx.send(event).await.map_err(|_| Gone)
    }
}

/// The SSE response of `plan`: its search (when it has one) and its answer run in a task
/// that writes the events as they happen.
pub fn sse(draft: Draft, plan: Plan) -> Response {
    let (tx, rx) = mpsc::channel(BUFFER);
    let context = crate::context::current();
    tokio::spawn(crate::context::scope(context, async move {
        let mut w = Writer { tx, seq: 0 };
        // `Gone`: the client left; dropping the generation here cancels it.
        let _ = run(&mut w, draft, &plan).await;
    }));
    Sse::new(ReceiverStream::new(rx).map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Ends the stream after `failure`: `error`, then `response.failed` with what was output.
async fn fail(
    w: &mut Writer,
    draft: &Draft,
    output: Vec<Value>,
    failure: ApiError,
) -> Result<(), Gone> {
    let code = failure.code.unwrap_or("server_error");
    w.send(
        "error",
        json!({"code": code, "message": failure.message, "param": failure.param}),
    )
    .await?;
    let error = json!({"code": code, "message": failure.message});
    w.send(
        "response.failed",
        json!({ "response": draft.response("failed", output, None, Some(error)) }),
    )
    .await
}

async fn run(w: &mut Writer, mut draft: Draft, plan: &Plan) -> Result<(), Gone> {
    let started = json!({ "response": draft.response("in_progress", Vec::new(), None, None) });
    w.send("response.created", started.clone()).await?;
    w.send("response.in_progress", started).await?;
    let mut output = Vec::new();
    if let (Some(added), Some(pending)) = (draft.search_item("in_progress"), draft.search.take()) {
        let item_id = added["id"].clone();
        w.send(
            "response.output_item.added",
            json!({"output_index": 0, "item": added}),
        )
        .await?;
        for step in ["in_progress", "searching"] {
            w.send(
                &format!("response.file_search_call.{step}"),
                json!({"output_index": 0, "item_id": item_id}),
            )
            .await?;
        }
        let failure = match plan.search(pending.clone()).await {
            Ok(searched) => {
                draft.search = Some(searched);
                None
            }
            Err(e) => {
                draft.search = Some(pending);
                Some(e)
            }
        };
        let status = if failure.is_some() {
            "failed"
        } else {
            w.send(
                "response.file_search_call.completed",
                json!({"output_index": 0, "item_id": item_id}),
            )
            .await?;
            "completed"
        };
        let item = draft.search_item(status);
        w.send(
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        )
        .await?;
        output.extend(item);
        if let Some(e) = failure {
            return fail(w, &draft, output, e).await;
        }
    }
    let (mut events, finisher) = match plan.answer(draft.search.as_ref()).await {
        Ok(started) => started,
        Err(e) => return fail(w, &draft, output, e).await,
    };
    let at = json!({
        "item_id": draft.message_id,
        "output_index": output.len(),
        "content_index": 0,
    });
    let with = |extra: Value| {
        let mut v = at.clone();
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    };
    w.send(
        "response.output_item.added",
        json!({"output_index": output.len(), "item": draft.message("in_progress", None)}),
    )
    .await?;
    w.send(
        "response.content_part.added",
        with(json!({"part": object::output_text("", &[])})),
    )
    .await?;
    let mut citer = Citer::new(finisher.sources());
    let mut text = String::new();
    let failure = loop {
        let (piece, end) = match events.next().await {
            Some(GenerateEvent::Token { text: t, .. }) => (citer.push(&t), None),
            Some(GenerateEvent::Finished {
                reason,
                usage,
                text: t,
            }) => {
                let mut piece = citer.push(&t);
                piece.push_str(&citer.finish());
                (piece, Some((reason, usage)))
            }
            Some(GenerateEvent::Failed(e)) => break ApiError::from(e),
            None => {
                break ApiError::from(BackendError::EngineStopped(
                    "The model's engine stopped mid-stream.".into(),
                ));
            }
        };
        if !piece.is_empty() {
            text.push_str(&piece);
            w.send(
                "response.output_text.delta",
                with(json!({"delta": piece, "logprobs": []})),
            )
            .await?;
        }
        let Some((reason, usage)) = end else {
            continue;
        };
        let annotations = finisher.annotations(citer.citations(), citer.emitted_chars());
        for (i, a) in annotations.iter().enumerate() {
            w.send(
                "response.output_text.annotation.added",
                with(json!({"annotation_index": i, "annotation": object::annotation(a)})),
            )
            .await?;
        }
        w.send(
            "response.output_text.done",
            with(json!({"text": text, "logprobs": []})),
        )
        .await?;
        w.send(
            "response.content_part.done",
            with(json!({"part": object::output_text(&text, &annotations)})),
        )
        .await?;
        let status = match reason {
            FinishReason::Stop => "completed",
            FinishReason::Length => "incomplete",
        };
        let message = draft.message(status, Some((&text, &annotations)));
        w.send(
            "response.output_item.done",
            json!({"output_index": output.len(), "item": message}),
        )
        .await?;
        output.push(message);
        let response = draft.response(status, output, Some(&usage), None);
        finisher.save(&response, &text).await;
        return w
            .send(
                &format!("response.{status}"),
                json!({ "response": response }),
            )
            .await;
    };
    fail(w, &draft, output, failure).await
}
