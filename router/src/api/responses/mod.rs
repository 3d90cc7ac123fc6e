//! OpenAI's Responses API, the subset that file search needs: `POST /v1/responses`
//! ([`create`], with its field checks in [`wire`], the checked request and its prompt in
//! [`plan`], the answer's citations and storage in [`finish`], the `file_search` tool in
//! [`search`], the objects in [`object`] and the SSE events in [`stream`]) and the stored
//! responses (`GET`/`DELETE /v1/responses/{id}`, [`stored`]).

pub mod create;
pub mod finish;
pub mod object;
pub mod plan;
pub mod search;
pub mod stored;
pub mod stream;
pub mod wire;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// The Responses API's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/responses", post(create::create))
        .route(
            "/v1/responses/{id}",
            get(stored::get).delete(stored::delete),
        )
}
