//! State machine tests of leaving memory: keep-alive expiry, zero and forever, unload calls
//! (waiting, timing out, forced, during a load), pinning.

use std::time::Duration;

use super::harness::{Harness, got, lease};
use crate::{AcquireOptions, CacheError, EvictionReason, KeepAlive, LoadOptions, ModelState};

#[test]
fn keep_alive_expiry_zero_and_forever() {
    let mut h = Harness::sized(&[("a", 1), ("b", 1), ("c", 1)], 100, 3);
    h.ready_idle("a");
    let minute = KeepAlive::Duration(Duration::from_secs(60));
    let b = h.acquire_with(
        "b",
        AcquireOptions {
            keep_alive: Some(minute),
        },
    );
    let zero = KeepAlive::Duration(Duration::ZERO);
    let c = h.acquire_with(
        "c",
        AcquireOptions {
            keep_alive: Some(zero),
        },
    );
    h.settle();
    let (b, c) = (lease(b), lease(c));
    assert_eq!(
        h.state.next_deadline(),
        Some(h.now + Duration::from_secs(300))
    );

    drop(c);
    h.released();
    assert_eq!(h.log.last().map(String::as_str), Some("unload c"));
    h.settle();
    assert_eq!(h.state_of("c"), ModelState::Unloaded);

    h.advance(Duration::from_secs(10));
    drop(b);
    h.released();
    assert_eq!(
        h.state.next_deadline(),
        Some(h.now + Duration::from_secs(60))
    );
    h.advance(Duration::from_secs(59));
    h.tick();
    assert_eq!(h.state_of("b"), ModelState::Ready);
    h.advance(Duration::from_secs(1));
    h.tick();
    assert_eq!(h.state_of("b"), ModelState::Unloading);
    h.settle();
    h.advance(Duration::from_secs(240));
    h.tick();
    h.settle();
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (ModelState::Unloaded, ModelState::Unloaded)
    );
    let m = h.state.metrics();
    let count = |i: usize, r| m.models[i].counters.evictions.get(r);
    assert_eq!(count(0, EvictionReason::Expired), 1);
    assert_eq!(count(1, EvictionReason::Expired), 1);
    assert_eq!(count(2, EvictionReason::KeepAliveZero), 1);

    let forever = AcquireOptions {
        keep_alive: Some(KeepAlive::Forever),
    };
    drop(lease({
        let rx = h.acquire_with("a", forever);
        h.settle();
        rx
    }));
    h.released();
    assert_eq!(h.state.next_deadline(), None);
    h.advance(Duration::from_secs(1 << 30));
    h.tick();
    assert_eq!(h.state_of("a"), ModelState::Ready);
}

#[test]
fn unload_waits_for_leases_then_succeeds() {
    let mut h = Harness::sized(&[("a", 1)], 100, 3);
    let held = lease({
        let rx = h.acquire("a");
        h.settle();
        rx
    });
    let mut rx = h.unload("a", false, Duration::from_secs(5));
    assert!(rx.try_recv().is_err());
    assert_eq!(h.state_of("a"), ModelState::Unloading);
    // New acquires wait meanwhile, then get a fresh load.
    let later = h.acquire("a");
    drop(held);
    h.released();
    assert_eq!(h.log.last().map(String::as_str), Some("unload a"));
    h.complete_one(0);
    assert_eq!(got(rx), Ok(()));
    h.settle();
    assert_eq!(*lease(later), "a");
    assert_eq!(h.log.iter().filter(|l| *l == "load a").count(), 2);
}

#[test]
fn unload_times_out_busy_and_the_model_stays() {
    let mut h = Harness::sized(&[("a", 1)], 100, 3);
    let held = lease({
        let rx = h.acquire("a");
        h.settle();
        rx
    });
    let rx = h.unload("a", false, Duration::from_secs(5));
    let waiting = h.acquire("a");
    assert_eq!(
        h.state.next_deadline(),
        Some(h.now + Duration::from_secs(5))
    );
    h.advance(Duration::from_secs(5));
    h.tick();
    assert_eq!(
        got(rx),
        Err(CacheError::Busy {
            model: "a".into(),
            in_flight: 1
        })
    );
    assert_eq!(h.state_of("a"), ModelState::Ready);
    // The caller that queued behind the unload is served by the same instance.
    let second = lease(waiting);
    assert_eq!(h.state.status(h.now)[0].in_flight, 2);
    drop((held, second));
    h.released();
    assert_eq!(h.state_of("a"), ModelState::Ready);
    assert!(!h.log.iter().any(|l| l == "unload a"));
}

#[test]
fn forced_unload_returns_at_once_and_frees_when_the_last_lease_drops() {
    let mut h = Harness::sized(&[("a", 7)], 100, 3);
    let held = lease({
        let rx = h.acquire("a");
        h.settle();
        rx
    });
    assert_eq!(got(h.unload("a", true, Duration::ZERO)), Ok(()));
    assert_eq!(h.state_of("a"), ModelState::Unloading);
    // The engine keeps serving the held lease; the memory is still counted.
    assert_eq!((held.as_str(), h.state.memory()[0].used), ("a", 7));
    h.advance(Duration::from_secs(3600));
    h.tick();
    assert_eq!(h.state_of("a"), ModelState::Unloading);
    drop(held);
    h.released();
    h.settle();
    assert_eq!(
        (h.state_of("a"), h.state.memory()[0].used),
        (ModelState::Unloaded, 0)
    );
    let m = h.state.metrics();
    assert_eq!(
        m.models[0].counters.evictions.get(EvictionReason::Unload),
        1
    );
}

#[test]
fn unload_during_a_load_serves_the_waiters_first() {
    let mut h = Harness::sized(&[("a", 1)], 100, 3);
    let waiter = h.acquire("a");
    let unload = h.unload("a", false, Duration::from_secs(5));
    h.settle();
    let held = lease(waiter);
    assert_eq!(h.state_of("a"), ModelState::Unloading);
    drop(held);
    h.released();
    h.settle();
    assert_eq!(got(unload), Ok(()));
    assert_eq!(h.state_of("a"), ModelState::Unloaded);
}

#[test]
fn load_pins_and_reports_status() {
    let mut h = Harness::sized(&[("a", 4)], 100, 3);
    let rx = h.load(
        "a",
        LoadOptions {
            keep_alive: None,
            pin: true,
        },
    );
    h.settle();
    let status = got(rx).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (status.state, status.pinned, status.actual_bytes),
        (ModelState::Ready, true, Some(4))
    );
    assert_eq!(h.state.next_deadline(), None);
    assert!(h.state.is_ready("a"));
    // Unpinning starts the keep-alive from now.
    h.advance(Duration::from_secs(1000));
    assert_eq!(h.state.set_pinned("a", false, h.now), Ok(()));
    assert_eq!(
        h.state.next_deadline(),
        Some(h.now + Duration::from_secs(300))
    );
    let unknown = h.state.set_pinned("zz", true, h.now);
    assert_eq!(unknown, Err(CacheError::UnknownModel("zz".into())));
}

#[test]
fn preloaded_models_never_expire_but_may_be_evicted() {
    let mut h = Harness::sized(&[("a", 60), ("b", 60)], 100, 3);
    h.state.preload(&["a".to_string()], h.now);
    h.take();
    h.settle();
    assert_eq!(h.state_of("a"), ModelState::Ready);
    assert_eq!(h.state.next_deadline(), None);
    h.advance(Duration::from_secs(3_600));
    h.tick();
    assert_eq!(h.state_of("a"), ModelState::Ready);
    // Memory pressure still evicts it; the next request loads it again.
    let b = h.acquire("b");
    h.settle();
    assert_eq!(h.state_of("a"), ModelState::Unloaded);
    drop(got(b));
    h.released();
    h.advance(Duration::from_secs(300));
    h.tick();
    h.settle();
    let a = h.acquire("a");
    h.settle();
    assert!(got(a).is_ok());
    assert_eq!(h.state_of("a"), ModelState::Ready);
}
