//! The plain state of per-key rate limits: one fixed one-minute window per key (aligned on Unix
//! minutes, so every replica agrees on the window), this replica's counts, the other replicas'
//! counts from the last sync, and the deltas not yet synced; and each key's requests in the
//! current second, held to the second's share of `rpm` ([`second_share`]) so that a minute's
//! requests cannot all arrive at once. No clocks, no I/O: the caller passes the time.

use std::collections::HashMap;

/// Seconds in one window.
pub const WINDOW_SECS: u64 = 60;

/// A key's limits per window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

/// What the client is told: OpenAI's `x-ratelimit-*` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limits: Limits,
    pub remaining_requests: u64,
    pub remaining_tokens: u64,
    /// Seconds until the window ends.
    pub reset_secs: u64,
}

/// A request over a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// `"requests"` or `"tokens"`.
    pub what: &'static str,
    /// The limit reached: per minute, or per second where `per_second`.
    pub limit: u64,
    /// Whether the second's share of `rpm` was reached rather than the minute's limit.
    pub per_second: bool,
    /// Seconds until a retry can be admitted.
    pub retry_secs: u64,
    pub quota: Quota,
}

/// The requests a key with `rpm` may start within one second: the minute's limit spread
/// evenly, and at least one (60 rpm: 1 a second; 600 rpm: 10 a second). OpenAI enforces its
/// per-minute limits over such shorter periods too.
pub fn second_share(rpm: u64) -> u64 {
    rpm.div_ceil(WINDOW_SECS).max(1)
}

/// One key's current window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyWindow {
    pub window: u64,
    pub own_requests: u64,
    pub own_tokens: i64,
    pub others_requests: u64,
    pub others_tokens: i64,
    pub pending_requests: u64,
    pub pending_tokens: i64,
    /// The Unix second of `second_requests`.
    pub second: u64,
    /// This replica's requests admitted in `second`.
    pub second_requests: u64,
}

impl KeyWindow {
    fn roll(&mut self, window: u64) {
        if self.window != window {
            *self = Self {
                window,
                ..Self::default()
            };
        }
    }

    /// This replica's requests admitted in the Unix second `now`.
    fn in_second(&self, now: u64) -> u64 {
        if self.second == now {
            self.second_requests
        } else {
            0
        }
    }

    fn used(&self) -> (u64, u64) {
        (
            self.own_requests + self.others_requests,
            (self.own_tokens + self.others_tokens).max(0) as u64,
        )
    }

    fn quota(&self, limits: Limits, now: u64) -> Quota {
        let (r, t) = self.used();
        Quota {
            limits,
            remaining_requests: limits.rpm.map_or(u64::MAX, |l| l.saturating_sub(r)),
            remaining_tokens: limits.tpm.map_or(u64::MAX, |l| l.saturating_sub(t)),
            reset_secs: WINDOW_SECS - now % WINDOW_SECS,
        }
    }
}

/// Every key's window.
#[derive(Debug, Default)]
pub struct Windows {
    keys: HashMap<String, KeyWindow>,
}

/// The window of Unix time `now`.
pub fn window_of(now: u64) -> u64 {
    now / WINDOW_SECS
}

impl Windows {
    fn entry(&mut self, key: &str, now: u64) -> &mut KeyWindow {
        let w = self.keys.entry(key.to_string()).or_default();
        w.roll(window_of(now));
        w
    }

    /// Admits one request of `key` reserving `tokens`, or refuses it (nothing counted).
    pub fn admit(
        &mut self,
        key: &str,
        limits: Limits,
        tokens: u64,
        now: u64,
    ) -> Result<Quota, Refusal> {
        let w = self.entry(key, now);
        let (r, t) = w.used();
        if let Some(l) = limits.rpm {
            let quota = w.quota(limits, now);
            if r + 1 > l {
                return Err(Refusal {
                    what: "requests",
                    limit: l,
                    per_second: false,
                    retry_secs: quota.reset_secs,
                    quota,
                });
            }
            let share = second_share(l);
            if w.in_second(now) >= share {
                return Err(Refusal {
                    what: "requests",
                    limit: share,
                    per_second: true,
                    retry_secs: 1,
                    quota,
                });
            }
        }
        if let Some(l) = limits.tpm
            && t.saturating_add(tokens) > l
        {
            let quota = w.quota(limits, now);
            return Err(Refusal {
                what: "tokens",
                limit: l,
                per_second: false,
                retry_secs: quota.reset_secs,
                quota,
            });
        }
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        w.own_requests += 1;
        w.own_tokens = w.own_tokens.saturating_add(tokens);
        w.pending_requests += 1;
        w.pending_tokens = w.pending_tokens.saturating_add(tokens);
        w.second_requests = w.in_second(now) + 1;
        w.second = now;
        Ok(w.quota(limits, now))
    }

    /// Corrects a reservation made in `window` by `delta` tokens (real usage less reserved).
    pub fn settle(&mut self, key: &str, window: u64, delta: i64) {
        if let Some(w) = self.keys.get_mut(key)
            && w.window == window
        {
            w.own_tokens = w.own_tokens.saturating_add(delta);
            w.pending_tokens = w.pending_tokens.saturating_add(delta);
        }
    }

    /// The quota of `key` now, without counting anything; registers the key for syncing.
    pub fn quota(&mut self, key: &str, limits: Limits, now: u64) -> Quota {
        self.entry(key, now).quota(limits, now)
    }

    /// Requests and tokens used by `key` in the current window, over every replica known.
    pub fn used(&mut self, key: &str, now: u64) -> (u64, u64) {
        self.entry(key, now).used()
    }

    /// Takes the deltas to push: `(key, window, requests, tokens)` of every key of the current
    /// window (keys of older windows are dropped).
    pub fn take_pending(&mut self, now: u64) -> Vec<(String, u64, u64, i64)> {
        let current = window_of(now);
        self.keys.retain(|_, w| w.window == current);
        self.keys
            .iter_mut()
            .map(|(k, w)| {
                let d = (k.clone(), w.window, w.pending_requests, w.pending_tokens);
                w.pending_requests = 0;
                w.pending_tokens = 0;
                d
            })
            .collect()
    }

    /// Records the totals over every replica after pushing `pushed` (requests, tokens) for
    /// `key` in `window`: the others' share is the total less what this replica counted.
    pub fn apply_totals(&mut self, key: &str, window: u64, total_requests: u64, total_tokens: i64) {
        if let Some(w) = self.keys.get_mut(key)
            && w.window == window
        {
            let synced_r = w.own_requests - w.pending_requests;
            let synced_t = w.own_tokens - w.pending_tokens;
            w.others_requests = total_requests.saturating_sub(synced_r);
            w.others_tokens = (total_tokens - synced_t).max(0);
        }
    }

    /// Gives back deltas that could not be pushed, so the next sync sends them.
    pub fn restore_pending(&mut self, key: &str, window: u64, requests: u64, tokens: i64) {
        if let Some(w) = self.keys.get_mut(key)
            && w.window == window
        {
            w.pending_requests += requests;
            w.pending_tokens = w.pending_tokens.saturating_add(tokens);
        }
    }

    /// Forgets the other replicas' counts (Redis is gone: local limits only).
    pub fn forget_others(&mut self) {
        for w in self.keys.values_mut() {
            w.others_requests = 0;
            w.others_tokens = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        rpm: Some(2),
        tpm: Some(100),
    };

    #[test]
    fn requests_and_tokens_are_limited_per_window() {
        let mut w = Windows::default();
        let q = w.admit("k", L, 30, 120).unwrap();
        assert_eq!(
            (q.remaining_requests, q.remaining_tokens, q.reset_secs),
            (1, 70, 60)
        );
        let r = w.admit("k", L, 80, 121).unwrap_err();
        assert_eq!((r.what, r.limit, r.per_second), ("tokens", 100, false));
        w.settle("k", window_of(120), -20);
        w.admit("k", L, 80, 130).unwrap();
        let r = w.admit("k", L, 0, 150).unwrap_err();
        assert_eq!(
            (r.what, r.quota.reset_secs, r.retry_secs),
            ("requests", 30, 30)
        );
        // The next minute starts afresh.
        assert!(w.admit("k", L, 0, 180).is_ok());
        assert!(w.admit("other", L, 0, 180).is_ok());
    }

    #[test]
    fn a_minutes_requests_are_spread_over_its_seconds() {
        assert_eq!(
            [1, 59, 60, 61, 600, 601].map(second_share),
            [1, 1, 1, 2, 10, 11]
        );
        let limits = Limits {
            rpm: Some(120),
            tpm: None,
        };
        let mut w = Windows::default();
        assert!(w.admit("k", limits, 0, 300).is_ok());
        assert!(w.admit("k", limits, 0, 300).is_ok());
        let r = w.admit("k", limits, 0, 300).unwrap_err();
        assert_eq!(
            (r.what, r.limit, r.per_second, r.retry_secs),
            ("requests", 2, true, 1)
        );
        // Refused requests count against neither limit.
        assert_eq!(r.quota.remaining_requests, 118);
        assert_eq!(w.used("k", 300), (2, 0));
        // The next second has its own share, also across a minute's end.
        assert!(w.admit("k", limits, 0, 301).is_ok());
        assert!(w.admit("k", limits, 0, 301).is_ok());
        assert!(w.admit("k", limits, 0, 301).is_err());
        assert!(w.admit("k", limits, 0, 359).is_ok());
        assert!(w.admit("k", limits, 0, 359).is_ok());
        assert!(w.admit("k", limits, 0, 359).unwrap_err().per_second);
        assert!(w.admit("k", limits, 0, 360).is_ok());
        assert_eq!(w.used("k", 360), (1, 0));
        // Keys have their own shares, and a key without `rpm` has none.
        assert!(w.admit("other", limits, 0, 360).is_ok());
        for _ in 0..10 {
            assert!(w.admit("free", Limits::default(), 0, 360).is_ok());
        }
    }

    #[test]
    fn totals_from_other_replicas_count_against_the_limit() {
        let mut w = Windows::default();
        w.admit("k", L, 10, 60).unwrap();
        let pending = w.take_pending(61);
        assert_eq!(pending, vec![("k".to_string(), 1, 1, 10)]);
        // Redis says two requests in all: one came from another replica.
        w.apply_totals("k", 1, 2, 25);
        assert_eq!(w.used("k", 62), (2, 25));
        assert_eq!(w.admit("k", L, 0, 62).unwrap_err().what, "requests");
        w.forget_others();
        assert_eq!(w.used("k", 62), (1, 10));
        assert!(w.take_pending(200).is_empty(), "old windows are dropped");
    }
}
