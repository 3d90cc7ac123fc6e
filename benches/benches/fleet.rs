//! A fleet on loopback: three nfai nodes, each holding one model at a time (a second evicts the
//! first), serving three tiny synthetic chat models, with one nfai in front routing to them.
//! The same traffic (concurrent clients sending short streamed chat requests, each naming one of
//! the three models at random) runs through the front balancing by affinity, then by round robin;
//! a third run kills a node under affinity halfway through. Prints requests/s, p50/p95 latency,
//! failures, and the model loads and evictions read from the nodes' `/metrics`.
//!
//! The models are tiny, so the figures measure routing, swaps and HTTP, not inference.
//!
//! `cargo bench -p nfai-benches --bench fleet` (`FLEET_CLIENTS`, `FLEET_REQUESTS` per client)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program stops at the first failed setup step"
)]

use std::time::Duration;

use nfai_tests::common::env_or;
use nfai_tests::fleet::{Fleet, Load, Swaps, Tally, cpu_model};

struct Row {
    name: &'static str,
    tally: Tally,
    swaps: Swaps,
    retried: u64,
}

async fn run(name: &'static str, balance: &str, slots: usize, kill: bool) -> Row {
    let (clients, per_client) = (env_or("FLEET_CLIENTS", 4), env_or("FLEET_REQUESTS", 100));
    let mut fleet = Fleet::start(name, slots, balance);
    let load = Load::start(&fleet.front.base, clients, Some(per_client));
    if kill {
        let half = (clients * per_client / 2) as u64;
        while load.completed() < half {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::task::block_in_place(|| fleet.nodes[0].kill());
    }
    let tally = load.join().await;
    let swaps = fleet.swaps().await;
    let retried = fleet.retried().await;
    tokio::task::block_in_place(|| drop(fleet));
    Row {
        name,
        tally,
        swaps,
        retried,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rows = [
        run("affinity", "affinity", 1, false).await,
        run("round robin", "round_robin", 1, false).await,
        run("affinity, node killed", "affinity", 2, true).await,
    ];
    println!(
        "fleet: 3 nfai nodes + 1 front on loopback, {} clients x {} streamed chat requests \
         (max_tokens 4, tiny synthetic models), {} cores, {}",
        env_or("FLEET_CLIENTS", 4),
        env_or("FLEET_REQUESTS", 100),
        std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model()
    );
    println!(
        "| {:<22} | {:>5} | {:>6} | {:>6} | {:>7} | {:>6} | {:>6} | {:>7} | {:>5} | {:>9} |",
        "policy",
        "ok",
        "failed",
        "broken",
        "req/s",
        "p50 ms",
        "p95 ms",
        "retried",
        "loads",
        "evictions"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {:<22} | {:>5} | {:>6} | {:>6} | {:>7.1} | {:>6.1} | {:>6.1} | {:>7} | {:>5} | {:>9} |",
            r.name,
            r.tally.ok,
            r.tally.failed.len(),
            r.tally.broken,
            r.tally.per_second(),
            ms(r.tally.quantile(0.5)),
            ms(r.tally.quantile(0.95)),
            r.retried,
            r.swaps.loads,
            r.swaps.evictions
        );
    }
    for r in rows.iter().filter(|r| !r.tally.failed.is_empty()) {
        let mut why: Vec<(usize, String)> = Vec::new();
        for f in &r.tally.failed {
            // The status and the start of the message, without the model's name.
            let key: String = f
                .split_once(": ")
                .map_or(f.as_str(), |(_, w)| w)
                .chars()
                .take(90)
                .collect();
            match why.iter_mut().find(|(_, k)| *k == key) {
                Some((n, _)) => *n += 1,
                None => why.push((1, key)),
            }
        }
        why.sort_by_key(|w| std::cmp::Reverse(w.0));
        for (n, w) in why.iter().take(3) {
            println!("{}: {n} x {w}", r.name);
        }
    }
    println!(
        "(node-killed row: slots of 2 models per node, so the two nodes left hold all three; \
         its loads and evictions count the two surviving nodes only)"
    );
}
