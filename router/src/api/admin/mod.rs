//! The admin API under `/admin`: model residency (load, unload, pin), memory, API keys
//! (`keys`) and source syncs (`sources`), guarded by the
//! admin token (`Authorization: Bearer <token>`). Without a configured token every call is 401.
//! Wire types are in [`wire`], handlers in `handlers`.

mod handlers;
mod keys;
mod sources;
pub mod wire;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use self::handlers::{list, load, memory, pin, unload, unpin};
use crate::error::ApiError;
use crate::state::AppState;

/// The admin routes, with the token check.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/models", get(list))
        .route("/admin/models/{id}/load", post(load))
        .route("/admin/models/{id}/unload", post(unload))
        .route("/admin/models/{id}/pin", post(pin))
        .route("/admin/models/{id}/unpin", post(unpin))
        .route("/admin/memory", get(memory))
        .route("/admin/keys", get(keys::list).post(keys::create))
        .route("/admin/keys/{id}", axum::routing::delete(keys::delete))
        .route("/admin/keys/{id}/usage", get(keys::usage))
        .route("/admin/sources", get(sources::list))
        .route(
            "/admin/vector_stores/{id}/sync",
            post(sources::start).get(sources::progress),
        )
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// Compares without an early exit, so timing does not reveal how much of a guess matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(token) = state.admin_token() else {
        return Err(ApiError::unauthorized(
            "The admin API is disabled: start nfai with NFAI_ADMIN_TOKEN or NFAI_ADMIN_TOKEN_FILE.",
        ));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same(given.as_bytes(), token.expose().as_bytes()) {
        return Err(ApiError::unauthorized(
            "Missing or wrong admin token (Authorization: Bearer …).",
        ));
    }
    Ok(next.run(req).await)
}
