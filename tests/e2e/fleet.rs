//! A fleet: three nfai nodes on loopback serving three tiny synthetic models, one nfai in front
//! routing to them through an upstream with health checks and residency polling. Affinity keeps
//! each model on its node (fewer model swaps than round robin, read from the nodes' metrics);
//! killing a node under load fails no request that had not started streaming; a rolling restart
//! (graceful stop, start again on the same port) under load fails none. Outcomes only: latency
//! on shared cores is the bench's business (benches/benches/fleet.rs).

use std::time::Duration;

use nfai_tests::fleet::{Fleet, Load, Swaps, Tally};
use tokio::task::block_in_place;

/// One fleet at a time: each is four apps with their runtimes.
async fn lock() -> tokio::sync::MutexGuard<'static, ()> {
    static L: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    L.get_or_init(|| tokio::sync::Mutex::new(())).lock().await
}

/// Waits until the load has completed `n` requests; whether it did within `limit`.
async fn until_completed(load: &Load, n: u64, limit: Duration) -> bool {
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if load.completed() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Three clients, twenty requests each, on a fleet of one-model nodes balanced by `balance`.
async fn swaps_under(balance: &str) -> (Swaps, Tally) {
    let fleet = Fleet::start(&format!("swaps-{balance}"), 1, balance);
    let tally = Load::start(&fleet.front.base, 3, Some(20)).join().await;
    let swaps = fleet.swaps().await;
    block_in_place(|| drop(fleet));
    (swaps, tally)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affinity_swaps_models_less_than_round_robin() {
    let _one = lock().await;
    let (affinity, a) = swaps_under("affinity").await;
    let (round_robin, r) = swaps_under("round_robin").await;
    eprintln!(
        "affinity: {affinity:?}, {} ok; round robin: {round_robin:?}, {} ok, {} failed",
        a.ok,
        r.ok,
        r.failed.len()
    );
    assert!(a.failed.is_empty(), "{:?}", a.failed);
    assert_eq!((a.ok, a.broken), (60, 0));
    assert!(
        affinity.evictions < round_robin.evictions,
        "affinity {affinity:?} vs round robin {round_robin:?}"
    );
    assert!(affinity.loads < round_robin.loads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_node_under_load_fails_no_request_that_had_not_started_streaming() {
    let _one = lock().await;
    // Two models per node: the two nodes left hold all three.
    let mut fleet = Fleet::start("kill", 2, "affinity");
    let load = Load::start(&fleet.front.base, 4, None);
    assert!(until_completed(&load, 30, Duration::from_secs(30)).await);
    block_in_place(|| fleet.nodes[0].kill());
    let at_kill = load.completed();
    assert!(
        fleet
            .await_front_sees(0, false, Duration::from_secs(5))
            .await,
        "the front did not notice the killed node"
    );
    let after = until_completed(&load, at_kill + 60, Duration::from_secs(30)).await;
    let tally = load.finish().await;
    eprintln!(
        "kill: {} ok, {} failed, {} broken while streaming, {} attempts retried",
        tally.ok,
        tally.failed.len(),
        tally.broken,
        fleet.retried().await
    );
    assert!(after, "the fleet stopped answering after the kill");
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    block_in_place(|| drop(fleet));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_none() {
    let _one = lock().await;
    let mut fleet = Fleet::start("rolling", 2, "affinity");
    let load = Load::start(&fleet.front.base, 4, None);
    assert!(until_completed(&load, 30, Duration::from_secs(30)).await);
    for i in 0..fleet.nodes.len() {
        let port = fleet.nodes[i].port;
        block_in_place(|| fleet.nodes[i].stop());
        assert!(
            fleet
                .await_front_sees(i, false, Duration::from_secs(5))
                .await,
            "the front did not notice node {i} going away"
        );
        block_in_place(|| fleet.nodes[i].start_again());
        assert_eq!(fleet.nodes[i].port, port);
        assert!(
            fleet
                .await_front_sees(i, true, Duration::from_secs(5))
                .await,
            "the front did not notice node {i} coming back"
        );
        let done = load.completed();
        assert!(until_completed(&load, done + 30, Duration::from_secs(30)).await);
    }
    let tally = load.finish().await;
    eprintln!(
        "rolling restart: {} ok, {} failed, {} broken, {} attempts retried",
        tally.ok,
        tally.failed.len(),
        tally.broken,
        fleet.retried().await
    );
    assert!(tally.failed.is_empty(), "{:?}", tally.failed);
    assert_eq!(tally.broken, 0);
    block_in_place(|| drop(fleet));
}
