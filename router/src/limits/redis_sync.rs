//! Sharing rate limits across replicas through Redis, off the request path: every
//! [`SYNC_EVERY`], one background task pushes this replica's new counts for each active key
//! (`INCRBY <prefix>rl:<key>:<minute>:r|t`, expiring after two minutes) and reads back the
//! totals, from which every replica learns the others' share. While Redis cannot be reached,
//! requests keep being served on local limits, `nfai_ratelimit_redis_up` is 0, and the task
//! keeps trying.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::limits::limiter::{RateLimiter, now};

/// How often counts are exchanged with Redis.
pub const SYNC_EVERY: Duration = Duration::from_millis(200);
/// Connection and response timeout of every Redis call.
const TIMEOUT: Duration = Duration::from_millis(500);

/// Starts the sync task for `limiter` against `url`; keys are named `<prefix>rl:…`.
pub fn start(limiter: &Arc<RateLimiter>, url: &str, prefix: String) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let weak = Arc::downgrade(limiter);
    tokio::spawn(async move {
        let mut conn: Option<ConnectionManager> = None;
        let mut tick = tokio::time::interval(SYNC_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(limiter) = weak.upgrade() else {
                return;
            };
            if conn.is_none() {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT))
                    .set_number_of_retries(1);
                match tokio::time::timeout(
                    TIMEOUT * 2,
                    ConnectionManager::new_with_config(client.clone(), cfg),
                )
                .await
                {
                    Ok(Ok(c)) => conn = Some(c),
                    Ok(Err(e)) => {
                        down(&limiter, &e.to_string());
                        continue;
                    }
                    Err(_) => {
                        down(&limiter, "connection timed out");
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            match sync_once(&limiter, c, &prefix).await {
                Ok(()) => {
                    if !limiter.redis.up.swap(true, Ordering::Relaxed) {
                        tracing::info!("rate limits are shared through Redis");
                    }
                }
                Err(e) => down(&limiter, &e.to_string()),
            }
        }
    });
    Ok(())
}

fn down(limiter: &RateLimiter, why: &str) {
    limiter.redis.failures.fetch_add(1, Ordering::Relaxed);
    if limiter.redis.up.swap(false, Ordering::Relaxed)
        || limiter.redis.failures.load(Ordering::Relaxed) == 1
    {
        tracing::warn!(
            "Redis is unreachable ({why}); rate limits are local to this replica until it is back"
        );
    }
    limiter.with_windows(|w| w.forget_others());
}

/// One exchange: push every active key's deltas, read back the totals.
async fn sync_once(
    limiter: &RateLimiter,
    conn: &mut ConnectionManager,
    prefix: &str,
) -> redis::RedisResult<()> {
    let pending = limiter.with_windows(|w| w.take_pending(now()));
    if pending.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (key, window, requests, tokens) in &pending {
        let r = format!("{prefix}rl:{key}:{window}:r");
        let t = format!("{prefix}rl:{key}:{window}:t");
        pipe.cmd("INCRBY").arg(&r).arg(*requests);
        pipe.cmd("INCRBY").arg(&t).arg(*tokens);
        pipe.cmd("EXPIRE").arg(&r).arg(120).ignore();
        pipe.cmd("EXPIRE").arg(&t).arg(120).ignore();
    }
    let totals: Result<Vec<i64>, _> = pipe.query_async(conn).await;
    match totals {
        Ok(totals) => {
            limiter.with_windows(|w| {
                for ((key, window, _, _), pair) in pending.iter().zip(totals.chunks(2)) {
                    if let [r, t] = pair {
                        w.apply_totals(key, *window, (*r).max(0) as u64, *t);
                    }
                }
            });
            Ok(())
        }
        Err(e) => {
            limiter.with_windows(|w| {
                for (key, window, r, t) in &pending {
                    w.restore_pending(key, *window, *r, *t);
                }
            });
            Err(e)
        }
    }
}
