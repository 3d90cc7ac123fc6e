//! [`RateLimiter`]: admits a key's request against its requests and tokens per minute
//! (reserving the prompt estimate plus `max_tokens`), settles the reservation with the real
//! usage through a [`Ticket`], and counts usage per key and model. Decisions are local and never
//! wait on Redis: when Redis is configured, `crate::limits::redis_sync` pushes this replica's
//! counts and pulls the others' in the background.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::limits::usage::{ModelUsage, UsageBook};
use crate::limits::window::{Limits, Quota, Refusal, Windows, window_of};

/// Whether Redis shares the limits right now.
#[derive(Debug, Default)]
pub struct RedisState {
    pub configured: bool,
    pub up: AtomicBool,
    pub failures: AtomicU64,
}

/// Per-key limits and usage of this replica.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<Windows>,
    usage: Mutex<UsageBook>,
    pub redis: RedisState,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The Unix time in seconds.
pub fn now() -> u64 {
    crate::time::unix_now()
}

/// An admitted request: settle it with the real usage (dropping it unsettled keeps the
/// reservation as the usage).
#[derive(Debug)]
pub struct Ticket {
    limiter: Arc<RateLimiter>,
    key: Arc<str>,
    model: String,
    window: u64,
    reserved: u64,
    settled: bool,
}

impl Ticket {
    /// Records the request's real usage and corrects the reservation.
    pub fn settle(mut self, prompt_tokens: u64, completion_tokens: u64) {
        self.finish(prompt_tokens, completion_tokens);
    }

    fn finish(&mut self, prompt: u64, completion: u64) {
        if self.settled {
            return;
        }
        self.settled = true;
        let real = prompt.saturating_add(completion);
        let delta = i64::try_from(real).unwrap_or(i64::MAX)
            - i64::try_from(self.reserved).unwrap_or(i64::MAX);
        lock(&self.limiter.windows).settle(&self.key, self.window, delta);
        lock(&self.limiter.usage).record(&self.key, &self.model, prompt, completion);
    }

    pub fn reserved(&self) -> u64 {
        self.reserved
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let reserved = self.reserved;
        self.finish(reserved, 0);
    }
}

impl RateLimiter {
    pub fn new(redis_configured: bool) -> Arc<Self> {
        Arc::new(Self {
            redis: RedisState {
                configured: redis_configured,
                ..RedisState::default()
            },
            ..Self::default()
        })
    }

    /// Admits one request of `key` for `model`, reserving `tokens`.
    pub fn admit(
        self: &Arc<Self>,
        key: &str,
        limits: Limits,
        model: &str,
        tokens: u64,
    ) -> Result<(Ticket, Quota), Refusal> {
        let t = now();
        let quota = lock(&self.windows).admit(key, limits, tokens, t)?;
        Ok((
            Ticket {
                limiter: self.clone(),
                key: key.into(),
                model: model.to_string(),
                window: window_of(t),
                reserved: tokens,
                settled: false,
            },
            quota,
        ))
    }

    /// `key`'s quota now, counting nothing.
    pub fn quota(&self, key: &str, limits: Limits) -> Quota {
        lock(&self.windows).quota(key, limits, now())
    }

    /// Requests and tokens `key` used in this minute, over every replica known.
    pub fn used(&self, key: &str) -> (u64, u64) {
        lock(&self.windows).used(key, now())
    }

    /// `key`'s usage by model since start.
    pub fn usage(&self, key: &str) -> BTreeMap<String, ModelUsage> {
        lock(&self.usage).of(key)
    }

    /// Runs `f` on the windows (for the Redis sync).
    pub fn with_windows<R>(&self, f: impl FnOnce(&mut Windows) -> R) -> R {
        f(&mut lock(&self.windows))
    }

    /// Whether limits are shared through Redis right now.
    pub fn shared(&self) -> bool {
        self.redis.configured && self.redis.up.load(Ordering::Relaxed)
    }

    /// Prometheus lines: whether Redis shares the limits, and its failures.
    pub fn render_metrics(&self) -> String {
        let mut o = String::new();
        if self.redis.configured {
            o.push_str("# HELP nfai_ratelimit_redis_up Whether rate limits are shared through Redis (0: local limits only).\n");
            o.push_str("# TYPE nfai_ratelimit_redis_up gauge\n");
            o.push_str(&format!(
                "nfai_ratelimit_redis_up {}\n",
                u8::from(self.redis.up.load(Ordering::Relaxed))
            ));
            o.push_str("# HELP nfai_ratelimit_redis_failures_total Failed syncs of the rate limits with Redis.\n");
            o.push_str("# TYPE nfai_ratelimit_redis_failures_total counter\n");
            o.push_str(&format!(
                "nfai_ratelimit_redis_failures_total {}\n",
                self.redis.failures.load(Ordering::Relaxed)
            ));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_settle_real_usage_or_keep_the_reservation() {
        let l = RateLimiter::new(false);
        let limits = Limits {
            rpm: None,
            tpm: Some(100),
        };
        let (t, q) = l.admit("k", limits, "m", 60).unwrap();
        assert_eq!(q.remaining_tokens, 40);
        assert!(l.admit("k", limits, "m", 60).is_err());
        t.settle(5, 5);
        assert_eq!(l.used("k").1, 10);
        let (t, _) = l.admit("k", limits, "m", 60).unwrap();
        drop(t);
        assert_eq!(l.used("k"), (2, 70));
        let u = l.usage("k");
        assert_eq!((u["m"].requests, u["m"].prompt_tokens), (2, 65));
    }
}
