//! Eviction and admission tests: LRU order and its keep-alive tie-break, what survives,
//! `max_loaded_per_device`, refusals that evict nothing, and loads that wait for room.

use std::time::Duration;

use super::harness::{Harness, got, lease, spec};
use crate::{AcquireOptions, CacheError, DeviceId, EvictionReason, KeepAlive, ModelState};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn unloads(h: &Harness) -> Vec<&str> {
    h.log
        .iter()
        .filter_map(|l| l.strip_prefix("unload "))
        .collect()
}

#[test]
fn evicts_least_recently_used_and_waits_for_the_room() {
    let mut h = Harness::sized(&[("a", 10), ("b", 10), ("c", 10), ("d", 10)], 30, 8);
    for id in ["b", "a", "c"] {
        h.ready_idle(id);
        h.advance(secs(1));
    }
    // "b" was used first, then "a"; using "b" again makes "a" the least recent.
    drop(lease({
        let rx = h.acquire("b");
        h.settle();
        rx
    }));
    h.released();
    h.advance(secs(1));
    let d = h.acquire("d");
    h.complete("estimate d");
    assert_eq!(unloads(&h), ["a"]);
    assert_eq!(
        (h.state_of("a"), h.state_of("d")),
        (ModelState::Unloading, ModelState::Loading)
    );
    // The load starts only once the evicted model's memory is free.
    assert!(!h.log.iter().any(|l| l == "load d"));
    assert_eq!(h.state.memory()[0].used, 40);
    h.complete("unload a");
    assert_eq!(h.log.last().map(String::as_str), Some("load d"));
    h.settle();
    lease(d);
    let memory = &h.state.memory()[0];
    assert_eq!((memory.used, memory.free), (30, Some(0)));
    assert_eq!(memory.resident, ["b", "c", "d"]);
    let m = h.state.metrics();
    assert_eq!(m.models[0].counters.evictions.get(EvictionReason::Lru), 1);
}

#[test]
fn ties_go_to_the_shortest_remaining_keep_alive() {
    let mut h = Harness::sized(&[("long", 10), ("short", 10), ("new", 10)], 20, 8);
    let ka = |s| AcquireOptions {
        keep_alive: Some(KeepAlive::Duration(secs(s))),
    };
    let long = h.acquire_with("long", ka(600));
    let short = h.acquire_with("short", ka(60));
    h.settle();
    drop((lease(long), lease(short)));
    h.released();
    let _new = h.acquire("new");
    h.settle();
    assert_eq!(unloads(&h), ["short"]);
    assert_eq!(h.state_of("long"), ModelState::Ready);
}

#[test]
fn pinned_and_leased_models_survive() {
    let mut h = Harness::sized(
        &[("pinned", 10), ("leased", 10), ("recent", 10), ("d", 10)],
        30,
        8,
    );
    let pinned = h.load(
        "pinned",
        crate::LoadOptions {
            keep_alive: None,
            pin: true,
        },
    );
    h.settle();
    assert!(got(pinned).is_ok());
    let held = lease({
        let rx = h.acquire("leased");
        h.settle();
        rx
    });
    h.advance(secs(5));
    h.ready_idle("recent");
    h.advance(secs(5));
    let d = h.acquire("d");
    h.settle();
    lease(d);
    // The most recently used model goes: the older ones are pinned or leased.
    assert_eq!(unloads(&h), ["recent"]);
    assert_eq!(h.state_of("pinned"), ModelState::Ready);
    assert_eq!(h.state_of("leased"), ModelState::Ready);
    drop(held);
}

#[test]
fn max_loaded_per_device_is_respected() {
    let mut h = Harness::new(
        ["a", "b", "c"].iter().map(|id| spec(id)).collect(),
        crate::CacheConfig {
            max_loaded_per_device: 2,
            ..crate::CacheConfig::default()
        },
    );
    for id in ["a", "b", "c"] {
        h.estimates.insert(id.into(), 1 << 40);
    }
    h.ready_idle("a");
    h.advance(secs(1));
    h.ready_idle("b");
    let c = h.acquire("c");
    h.settle();
    lease(c);
    assert_eq!(unloads(&h), ["a"]);
    let memory = &h.state.memory()[0];
    assert_eq!(
        (memory.budget, memory.free, memory.resident.len()),
        (None, None, 2)
    );
}

#[test]
fn refusal_evicts_nothing() {
    let mut h = Harness::sized(
        &[("pinned", 10), ("leased", 10), ("idle", 10), ("big", 20)],
        30,
        8,
    );
    h.state
        .set_pinned("pinned", true, h.now)
        .unwrap_or_else(|e| panic!("{e}"));
    h.ready_idle("pinned");
    let held = lease({
        let rx = h.acquire("leased");
        h.settle();
        rx
    });
    h.ready_idle("idle");
    let big = h.acquire("big");
    h.settle();
    let want = CacheError::InsufficientMemory {
        model: "big".into(),
        device: DeviceId::Cpu,
        needed: 20,
        available: 10,
    };
    assert_eq!(got(big).err(), Some(want.clone()));
    assert!(unloads(&h).is_empty());
    for id in ["pinned", "leased", "idle"] {
        assert_eq!(h.state_of(id), ModelState::Ready, "{id}");
    }
    let status = h.state.status(h.now);
    let big = status.iter().find(|s| s.id == "big");
    assert_eq!(
        big.map(|s| (s.state, s.last_error.clone())),
        Some((ModelState::Unloaded, Some(want.to_string())))
    );
    assert_eq!(h.state.memory()[0].used, 30);

    // Over the model count, with nothing evictable: refused by count, nothing evicted.
    h.state
        .set_pinned("idle", true, h.now)
        .unwrap_or_else(|e| panic!("{e}"));
    h.estimates.insert("big".into(), 0);
    h.actuals.insert("big".into(), 0);
    let mut h2 = h;
    h2.state.config.max_loaded_per_device = 3;
    let big = h2.acquire("big");
    h2.settle();
    let limit = CacheError::TooManyLoaded {
        model: "big".into(),
        device: DeviceId::Cpu,
        limit: 3,
    };
    assert_eq!(got(big).err(), Some(limit));
    assert!(unloads(&h2).is_empty());
    drop(held);
}

#[test]
fn a_model_larger_than_the_budget_is_refused() {
    let mut h = Harness::sized(&[("a", 10), ("huge", 100)], 50, 8);
    h.ready_idle("a");
    let huge = h.acquire("huge");
    h.settle();
    let available = 50;
    assert!(
        matches!(got(huge), Err(CacheError::InsufficientMemory { available: a, .. }) if a == available)
    );
    assert!(unloads(&h).is_empty());
}

#[test]
fn a_failing_model_does_not_block_others() {
    let mut h = Harness::sized(&[("bad", 10), ("good", 10)], 20, 8);
    h.failing.insert("bad".into());
    let bad = h.acquire("bad");
    let good = h.acquire("good");
    h.complete("estimate bad");
    h.complete("estimate good");
    h.complete("load bad");
    assert!(matches!(got(bad), Err(CacheError::LoadFailed { .. })));
    assert_eq!(h.state.memory()[0].used, 10);
    h.settle();
    lease(good);
    assert_eq!(
        (h.state_of("bad"), h.state_of("good")),
        (ModelState::Failed, ModelState::Ready)
    );
}

#[test]
fn a_model_larger_than_planned_makes_waiting_loads_plan_again() {
    let models = [("w", 10), ("v", 10), ("y", 10), ("x", 10)];
    let mut h = Harness::sized(&models, 30, 8);
    h.actuals.insert("y".into(), 20);
    h.ready_idle("w");
    h.advance(secs(1));
    h.ready_idle("v");
    let y = h.acquire("y");
    h.complete("estimate y");
    assert_eq!(h.state_of("y"), ModelState::Loading);
    let x = h.acquire("x");
    h.complete("estimate x");
    assert_eq!(unloads(&h), ["w"]);
    h.complete("load y");
    lease(y);
    // w's memory is free, but y took 10 more than planned: x evicts v too before it starts.
    h.complete("unload w");
    assert_eq!(unloads(&h), ["w", "v"]);
    assert!(!h.log.iter().any(|l| l == "load x"));
    h.complete("unload v");
    h.settle();
    lease(x);
    assert_eq!(h.state.memory()[0].used, 30);
}
