//! `POST /v1/responses`: checks the request and what it names ([`Plan::new`]: the model, the
//! previous response, the stores), runs the file search, assembles the prompt
//! (`crate::responses::prompt`), and generates through the model's backend like chat does, so
//! native and upstream models both answer. The answer goes out as one response object or as
//! the Responses API's SSE events ([`super::stream`]); with `store` it is kept for
//! `GET /v1/responses/{id}` and later turns.
//!
//! A request that fails its checks is a 4xx before anything runs. When streaming, the search
//! and the answer run in the stream: the search's events go out as it starts and ends, and a
//! failure of either ends the stream with `error` and `response.failed`.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use nfai_inference::FinishReason;
use serde_json::Value;

use super::object::{Draft, new_id};
use super::plan::{Plan, as_input};
use super::stream;
use super::wire::{CreateBody, Valid};
use crate::api::json::{JsonBody, OpenAiJson};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::responses::cite;
use crate::state::AppState;
use crate::time::unix_now;

pub async fn create(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    OpenAiJson(body): OpenAiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let req: Valid = body.validate()?;
    let caller = caller.map(|Extension(c)| c).unwrap_or_default();
    let plan = Plan::new(state, caller, req).await?;
    let pending = plan.pending_search();
    let draft = Draft {
        id: new_id("resp"),
        created_at: unix_now(),
        model: plan.route.display.clone(),
        message_id: new_id("msg"),
        search: pending.clone(),
        echo: plan.req.echo.clone(),
    };
    if plan.req.stream {
        return Ok(stream::sse(draft, plan));
    }
    let searched = match pending {
        Some(p) => Some(plan.search(p).await?),
        None => None,
    };
    let (events, finisher) = plan.answer(searched.as_ref()).await?;
    let draft = Draft {
        search: searched,
        ..draft
    };
    let (raw, reason, usage) = crate::backend::collect(events)
        .await
        .map_err(|e| as_input(e.into()))?;
    let (text, citations) = cite::strip(&raw, finisher.sources());
    let annotations = finisher.annotations(&citations, text.chars().count());
    let status = match reason {
        FinishReason::Stop => "completed",
        FinishReason::Length => "incomplete",
    };
    let mut output: Vec<Value> = draft.search_item("completed").into_iter().collect();
    output.push(draft.message(status, Some((&text, &annotations))));
    let response = draft.response(status, output, Some(&usage), None);
    finisher.save(&response, &text).await;
    Ok(JsonBody(response).into_response())
}
