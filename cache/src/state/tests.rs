//! State machine tests of loading: single flight, failures and retries, waiter limits,
//! actual sizes, stale completions.

use std::time::Duration;

use super::harness::{Harness, got, lease, spec};
use crate::{CacheConfig, CacheError, ModelState};

#[test]
fn concurrent_acquires_share_one_load() {
    let mut h = Harness::sized(&[("a", 10)], 100, 3);
    let replies: Vec<_> = (0..100).map(|_| h.acquire("a")).collect();
    assert_eq!(h.log, ["estimate a"]);
    assert_eq!(h.state_of("a"), ModelState::Loading);
    h.complete_one(0);
    assert_eq!(h.log, ["estimate a", "load a"]);
    assert_eq!(h.state.status(h.now)[0].waiters, 100);
    h.settle();
    let leases: Vec<_> = replies.into_iter().map(lease).collect();
    assert!(leases.iter().all(|l| **l == "a" && l.model_id() == "a"));
    let status = &h.state.status(h.now)[0];
    assert_eq!(
        (status.state, status.in_flight, status.requests_served),
        (ModelState::Ready, 100, 100)
    );
    assert_eq!(status.load_duration, Some(Duration::from_millis(300)));
    assert_eq!(h.log.len(), 2);
}

#[test]
fn failure_reaches_every_waiter_and_the_next_acquire_retries() {
    let mut h = Harness::sized(&[("a", 10)], 100, 3);
    h.failing.insert("a".into());
    let replies: Vec<_> = (0..3).map(|_| h.acquire("a")).collect();
    h.settle();
    for rx in replies {
        let err = got(rx).err();
        let cause = "a is broken".to_owned();
        assert_eq!(
            err,
            Some(CacheError::LoadFailed {
                model: "a".into(),
                cause
            })
        );
    }
    let status = &h.state.status(h.now)[0];
    assert_eq!(status.state, ModelState::Failed);
    assert_eq!(status.last_error.as_deref(), Some("a is broken"));
    assert_eq!(h.state.metrics().models[0].counters.loads_failure, 1);

    h.failing.clear();
    let rx = h.acquire("a");
    h.settle();
    assert_eq!(*lease(rx), "a");
    assert_eq!(h.log, ["estimate a", "load a", "estimate a", "load a"]);
    let status = &h.state.status(h.now)[0];
    assert_eq!(
        (status.state, status.last_error.clone()),
        (ModelState::Ready, None)
    );
}

#[test]
fn failed_estimate_is_a_load_failure() {
    let mut h = Harness::sized(&[("a", 10)], 100, 3);
    h.estimates.clear();
    let rx = h.acquire("a");
    h.settle();
    assert!(matches!(got(rx), Err(CacheError::LoadFailed { cause, .. }) if cause == "no estimate"));
    assert_eq!(h.state_of("a"), ModelState::Failed);
    assert_eq!(h.state.memory()[0].used, 0);
}

#[test]
fn actual_size_replaces_the_estimate() {
    let mut h = Harness::sized(&[("a", 10)], 100, 3);
    h.actuals.insert("a".into(), 25);
    h.ready_idle("a");
    let status = &h.state.status(h.now)[0];
    assert_eq!(
        (status.estimated_bytes, status.actual_bytes),
        (Some(25), Some(25))
    );
    assert_eq!(h.state.memory()[0].used, 25);
    let unloaded = h.unload("a", false, Duration::from_secs(1));
    h.settle();
    assert_eq!(got(unloaded), Ok(()));
    assert_eq!(h.state.memory()[0].used, 0);
    // The next load is planned with 25 bytes and asks for no new estimate.
    let _rx = h.acquire("a");
    assert_eq!(h.log.last().map(String::as_str), Some("load a"));
    assert_eq!(h.log.iter().filter(|l| *l == "estimate a").count(), 1);
    assert_eq!(h.state.memory()[0].used, 25);
}

#[test]
fn too_many_waiters_fail_at_once_and_abandoned_ones_are_pruned() {
    let config = CacheConfig {
        max_waiters: 3,
        ..CacheConfig::default()
    };
    let mut h = Harness::new(vec![spec("a")], config);
    h.estimates.insert("a".into(), 1);
    let waiting: Vec<_> = (0..3).map(|_| h.acquire("a")).collect();
    let err = got(h.acquire("a")).err();
    assert_eq!(
        err,
        Some(CacheError::TooManyWaiters {
            model: "a".into(),
            limit: 3
        })
    );
    // Callers that give up free their places.
    drop(waiting);
    assert_eq!(h.state.status(h.now)[0].waiters, 0);
    let kept: Vec<_> = (0..3).map(|_| h.acquire("a")).collect();
    h.settle();
    for rx in kept {
        lease(rx);
    }
    assert_eq!(h.state.status(h.now)[0].requests_served, 3);
}

#[test]
fn stale_completions_are_ignored() {
    let mut h = Harness::sized(&[("a", 1)], 100, 3);
    let _rx = h.acquire("a");
    h.state.on_estimated("a", 99, Ok(1), h.now);
    h.state.on_unloaded("a", 1, h.now);
    h.take();
    assert_eq!(h.log, ["estimate a"]);
    h.settle();
    assert_eq!(h.state_of("a"), ModelState::Ready);
    // A load result nobody expects goes back to the loader.
    h.state
        .on_loaded("a", 7, Ok(("x".into(), 1)), Duration::ZERO, h.now);
    h.take();
    assert_eq!(h.log.last().map(String::as_str), Some("unload a"));
    h.settle();
    assert_eq!(h.state_of("a"), ModelState::Ready);
}
