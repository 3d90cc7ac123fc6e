//! The admin console at `/admin/ui`: one page of plain HTML, CSS and JavaScript compiled into
//! the binary. The page itself is public; everything it shows comes from the admin API, called
//! with the admin token the user types in (kept in the tab's `sessionStorage`, sent as
//! `Authorization: Bearer`), and from `/metrics` for its live charts.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// The console's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/ui", get(index))
        .route("/admin/ui/", get(index))
        .route("/admin/ui/console.js", get(script))
        .route("/admin/ui/console.css", get(style))
}

/// Headers every asset carries: no caching across versions, no framing, no sniffing, and a
/// policy that allows only the console's own script and style.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ],
        body,
    )
}

pub async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}
