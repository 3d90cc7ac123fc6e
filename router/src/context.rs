//! The context of one request: its id, its deadline, and the tenant the engines' queues account
//! it to (the caller's key).
//!
//! Every layer may read it and it imports none of them. The API layer fills it from the request
//! headers (`x-request-id`, `x-request-timeout`) and serves the request inside it as a
//! task-local; the validated request types copy the deadline, so backends get it explicitly.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// Values of the request being served.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The client's `x-request-id`, else one made up for the request; empty outside a request.
    pub request_id: Arc<str>,
    /// All attempts of the request end by then.
    pub deadline: Option<Instant>,
    /// What the request did, for its metrics and access log line (none outside a request).
    pub record: Option<Arc<crate::metrics::RequestRecord>>,
    /// Who the engines' queues account the request to, so that tenants take turns: the
    /// caller's key id once the key check has run; `None` for callers without a key.
    pub tenant: Option<Arc<str>>,
}

/// A header that makes no valid context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("The x-request-timeout header must be a positive number of seconds.")]
    InvalidTimeout,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The context of the request this task serves (default outside a request).
pub fn current() -> RequestContext {
    CONTEXT.try_with(Clone::clone).unwrap_or_default()
}

/// The deadline of the request this task serves, if it has one.
pub fn deadline() -> Option<Instant> {
    CONTEXT.try_with(|c| c.deadline).ok().flatten()
}

/// The record of the request this task serves, if any.
pub fn record() -> Option<Arc<crate::metrics::RequestRecord>> {
    CONTEXT.try_with(|c| c.record.clone()).ok().flatten()
}

/// The tenant of the request this task serves (`None` outside a request or without a key).
pub fn tenant() -> Option<Arc<str>> {
    CONTEXT.try_with(|c| c.tenant.clone()).ok().flatten()
}

/// Runs `fut` in the current request context, accounted to `tenant`.
pub fn as_tenant<F: std::future::Future>(
    tenant: Option<Arc<str>>,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<RequestContext, F> {
    let mut ctx = current();
    ctx.tenant = tenant;
    scope(ctx, fut)
}

/// Runs `fut` with `ctx` as the request context.
pub fn scope<F: std::future::Future>(
    ctx: RequestContext,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<RequestContext, F> {
    CONTEXT.scope(ctx, fut)
}

/// The longest `x-request-timeout` accepted, in seconds.
const MAX_TIMEOUT_SECS: f64 = 1e9;

/// The context of a request with these header values.
pub fn from_headers(
    request_id: Option<&str>,
    timeout: Option<&[u8]>,
) -> Result<RequestContext, ContextError> {
    let deadline = match timeout {
        None => None,
        Some(raw) => Some(Instant::now() + parse_timeout(raw)?),
    };
    let request_id: Arc<str> = match request_id.map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => id.into(),
        None => new_request_id().into(),
    };
    Ok(RequestContext {
        request_id,
        deadline,
        record: None,
        tenant: None,
    })
}

/// `x-request-timeout`: a positive, finite number of seconds.
pub fn parse_timeout(raw: &[u8]) -> Result<Duration, ContextError> {
    let secs = std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .ok_or(ContextError::InvalidTimeout)?;
    if secs > 0.0 && secs.is_finite() && secs < MAX_TIMEOUT_SECS {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(ContextError::InvalidTimeout)
    }
}

/// A request id: 16 random hex digits.
pub fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n: u64 = rand::random();
    (0..16)
        .rev()
        .map(|i| HEX[((n >> (i * 4)) & 0xf) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_or_fail() {
        assert_eq!(parse_timeout(b" 2.5 "), Ok(Duration::from_millis(2500)));
        for bad in [&b"0"[..], b"-1", b"nan", b"inf", b"soon", b"1e10", b"\xff"] {
            assert_eq!(parse_timeout(bad), Err(ContextError::InvalidTimeout));
        }
    }

    #[tokio::test]
    async fn the_context_is_task_local() {
        assert!(current().deadline.is_none());
        let ctx = from_headers(Some("abc"), Some(b"5")).unwrap();
        let seen = scope(ctx, async { (current().request_id, deadline().is_some()) }).await;
        assert_eq!((&*seen.0, seen.1), ("abc", true));
        let made = from_headers(None, None).unwrap();
        assert_eq!(made.request_id.len(), 16);
        assert!(made.deadline.is_none());
    }
}
