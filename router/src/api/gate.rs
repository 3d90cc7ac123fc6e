//! The door of `/v1` and `/api` (and of `/metrics` when private): API keys, model permissions
//! and per-key rate limits, before any handler runs.
//!
//! - Once any key exists (or the server is on a public address), a request needs
//!   `Authorization: Bearer <key or admin token>`; otherwise 401 (`invalid_api_key`).
//! - The [`Caller`] goes into the request's extensions (handlers read it to own files, vector
//!   stores and responses per key) and into the response's (for the access log).
//! - A key limited to some models gets 404 for any other, as if it did not exist, and the model
//!   lists (`/v1/models`, `/api/tags`, `/api/ps`) show it only those ([`lists_model`]).
//! - A key with `rpm`/`tpm` is admitted against its minute window (the prompt estimate plus the
//!   completion maximum reserved) and, for requests, the second's share of `rpm`; it is
//!   answered 429 with `Retry-After` over a limit, and its
//!   reservation is settled with the real usage when the answer's body ends. Every answer to a
//!   limited key carries OpenAI's `x-ratelimit-*` headers.
//!
//! Errors are in OpenAI's shape, or Ollama's on `/api`.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::api::json::BodyLimit;
use crate::api::layer::is_ollama_path;
use crate::auth::{Caller, KeyRecord, Rejection};
use crate::error::ApiError;
use crate::limits::estimate::{Estimate, estimate};
use crate::limits::settle::SettledBody;
use crate::limits::{Limits, Quota};
use crate::state::AppState;

/// The longest `Authorization` value looked at.
const MAX_AUTHORIZATION: usize = 4096;

fn guarded(state: &AppState, path: &str) -> bool {
    path == "/v1"
        || path.starts_with("/v1/")
        || path == "/api"
        || path.starts_with("/api/")
        || (path == "/metrics" && state.private_metrics())
}

/// The bearer token of `headers`, or why there is none.
fn bearer(headers: &HeaderMap) -> Result<&str, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(
            "You didn't provide an API key. Send it as `Authorization: Bearer <key>`; keys are made with `nfai keys create` or POST /admin/keys.",
        );
    };
    if value.len() > MAX_AUTHORIZATION {
        return Err("The Authorization header is too long to hold an API key.");
    }
    let text = value
        .to_str()
        .map_err(|_| "The Authorization header is not valid text.")?;
    let (scheme, token) = text
        .trim()
        .split_once(' ')
        .ok_or("The Authorization header must be `Bearer <key>`.")?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err("The Authorization header must be `Bearer <key>`.");
    }
    Ok(token)
}

fn is_admin(state: &AppState, token: &str) -> bool {
    state
        .admin_token()
        .is_some_and(|t| bool::from(t.expose().as_bytes().ct_eq(token.as_bytes())))
}

/// Who sent the request, or the 401 to answer.
fn authenticate(state: &AppState, headers: &HeaderMap, path: &str) -> Result<Caller, ApiError> {
    let required = path == "/metrics" || state.keyring().is_some_and(|ring| ring.required());
    if !required {
        return Ok(Caller::anonymous());
    }
    let token = bearer(headers).map_err(ApiError::invalid_api_key)?;
    if is_admin(state, token) {
        return Ok(Caller::admin());
    }
    let ring = state
        .keyring()
        .ok_or_else(|| ApiError::invalid_api_key("Incorrect API key provided."))?;
    match ring.authenticate(token, crate::time::unix_now()) {
        Ok(key) => Ok(Caller::with_key(key)),
        Err(Rejection::Unknown) => Err(ApiError::invalid_api_key(
            "Incorrect API key provided (unknown or revoked).",
        )),
        Err(Rejection::Expired) => Err(ApiError::invalid_api_key("The API key has expired.")),
    }
}

/// Whether `caller` sees the model named `model` in the model lists: a key limited to some
/// models sees only those; the admin token, other keys and a server without keys see them all.
pub fn lists_model(state: &AppState, caller: Option<&Caller>, model: &str) -> bool {
    match caller.and_then(|c| c.key.as_deref()) {
        Some(key) => may_use(state, key, model),
        None => true,
    }
}

/// Whether `key` may use the model named `model` (the same name, or a name that resolves to
/// the same model).
fn may_use(state: &AppState, key: &KeyRecord, model: &str) -> bool {
    let Some(allowed) = &key.models else {
        return true;
    };
    if allowed.iter().any(|m| m == model) {
        return true;
    }
    let Ok(target) = state.route(model) else {
        return false;
    };
    allowed
        .iter()
        .filter_map(|m| state.route(m).ok())
        .any(|r| r.display == target.display)
}

fn quota_headers(headers: &mut HeaderMap, q: &Quota) {
    let reset = HeaderValue::from_str(&format!("{}s", q.reset_secs)).ok();
    let mut put = |name: &'static str, v: HeaderValue| {
        headers.insert(name, v);
    };
    if let Some(l) = q.limits.rpm {
        put("x-ratelimit-limit-requests", HeaderValue::from(l));
        put(
            "x-ratelimit-remaining-requests",
            HeaderValue::from(q.remaining_requests),
        );
        if let Some(r) = &reset {
            put("x-ratelimit-reset-requests", r.clone());
        }
    }
    if let Some(l) = q.limits.tpm {
        put("x-ratelimit-limit-tokens", HeaderValue::from(l));
        put(
            "x-ratelimit-remaining-tokens",
            HeaderValue::from(q.remaining_tokens),
        );
        if let Some(r) = &reset {
            put("x-ratelimit-reset-tokens", r.clone());
        }
    }
}

/// Whether the body is read here (JSON of the inference routes; never an upload).
fn reads_body(req: &Request) -> bool {
    if req.method() != Method::POST {
        return false;
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    !(ct.starts_with("multipart/") || ct.starts_with("application/octet-stream"))
}

/// The middleware: see the module doc.
pub async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if !guarded(&state, &path) {
        return next.run(req).await;
    }
    let ollama = is_ollama_path(&path);
    let answer = |e: ApiError| {
        if ollama {
            e.into_ollama_response()
        } else {
            e.into_response()
        }
    };
    let caller = match authenticate(&state, req.headers(), &path) {
        Ok(c) => c,
        Err(e) => return answer(e),
    };
    let Some(key) = caller.key.clone() else {
        return run_as(req, caller, next).await;
    };
    let (req, est) = match read_estimate(req, &path).await {
        Ok(x) => x,
        Err(e) => return answer(e),
    };
    let model = est
        .model
        .clone()
        .or_else(|| path.strip_prefix("/v1/models/").map(str::to_string));
    if let Some(m) = &model
        && !may_use(&state, &key, m)
    {
        return answer(ApiError::model_not_found(m));
    }
    let limits = Limits {
        rpm: key.rpm,
        tpm: key.tpm,
    };
    let tokens = if limits.tpm.is_some() || est.model.is_some() {
        est.total()
    } else {
        0
    };
    let model_name = model.unwrap_or_else(|| "-".to_string());
    let (ticket, quota) = match state.limiter().admit(&key.id, limits, &model_name, tokens) {
        Ok(x) => x,
        Err(refusal) => {
            let message = if refusal.per_second {
                format!(
                    "Rate limit reached for key {} on requests per second: limit {} (its {} \
                     requests a minute are spread over the minute). Try again in {} s.",
                    key.id,
                    refusal.limit,
                    limits.rpm.unwrap_or_default(),
                    refusal.retry_secs
                )
            } else {
                format!(
                    "Rate limit reached for key {} on {} per minute: limit {}. Try again in {} s.",
                    key.id, refusal.what, refusal.limit, refusal.retry_secs
                )
            };
            let e = ApiError::rate_limited(message, refusal.retry_secs);
            let mut res = answer(e);
            quota_headers(res.headers_mut(), &refusal.quota);
            return res;
        }
    };
    let mut res = run_as(req, caller, next).await;
    quota_headers(res.headers_mut(), &quota);
    let failed = !res.status().is_success();
    let (parts, body) = res.into_parts();
    Response::from_parts(
        parts,
        Body::new(SettledBody::new(body, ticket, est.prompt_tokens, failed)),
    )
}

/// Serves `req` with `caller` in its extensions and in the response's, its work accounted to
/// the caller's key in the engines' queues.
async fn run_as(mut req: Request, caller: Caller, next: Next) -> Response {
    req.extensions_mut().insert(caller.clone());
    let tenant = caller.key_id.clone();
    let mut res = crate::context::as_tenant(tenant, next.run(req)).await;
    res.extensions_mut().insert(caller);
    res
}

/// Reads a JSON body (within the body limit) for its model and cost, and puts it back.
async fn read_estimate(req: Request, path: &str) -> Result<(Request, Estimate), ApiError> {
    if !reads_body(&req) {
        return Ok((req, Estimate::default()));
    }
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(crate::config::defaults::MAX_BODY_BYTES, |l| l.0);
    let (parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::payload_too_large(limit))?;
    let est = estimate(path, &bytes).unwrap_or_default();
    Ok((Request::from_parts(parts, Body::from(bytes)), est))
}
