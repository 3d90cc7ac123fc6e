//! Primary-key fetches through nfai's PostgreSQL pool beside `pgbench -S` on the same server,
//! alternated, both with 16 clients: rate (fetches/s) and the pool's p50/p95 per fetch
//! (checkout included). One run per statement mode (`prepared`, `unnamed`); pgbench runs with
//! `-M prepared`, its fastest.
//!
//! The data: `pgbench -i -s 10` (1M accounts) in a scratch database of the local server
//! (127.0.0.1:5432, user postgres), dropped at the end. Each round lasts `PG_BENCH_SECS`
//! (default 10) seconds; the async runtime has 2 worker threads and pgbench 2 (`-j 2`).
//!
//! `cargo bench -p nfai-benches --bench pg_pool`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program stops at the first failed setup step"
)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nfai_retrieval::pg::{PgConfig, PgPool, StatementMode, Type};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const CLIENTS: usize = 16;
const ACCOUNTS: i64 = 1_000_000;
const ROUNDS: usize = 2;

fn psql(db: &str, sql: &str) {
    let ok = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "psql: {sql}");
}

fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    format!(
        "{model}, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

/// `pgbench -S` for `secs`: transactions per second.
fn pgbench(db: &str, secs: u64) -> f64 {
    let out = Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-S",
            "-M",
            "prepared",
            "-n",
        ])
        .args([
            "-c",
            &CLIENTS.to_string(),
            "-j",
            "2",
            "-T",
            &secs.to_string(),
            db,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l[6..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("pgbench: {text}{}", String::from_utf8_lossy(&out.stderr)))
}

/// 16 tasks fetching random accounts by primary key for `secs`: (fetches/s, p50, p95).
async fn pool_round(pool: &PgPool, secs: u64) -> (f64, Duration, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let pool = pool.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(100_000);
                let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ (t as u64);
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let aid = (x % ACCOUNTS as u64) as i32 + 1;
                    let t0 = Instant::now();
                    let rows = pool
                        .query(
                            "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
                            &[(&aid, Type::INT4)],
                        )
                        .await
                        .unwrap();
                    lat.push(t0.elapsed());
                    assert_eq!(rows.len(), 1);
                }
                lat
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let q = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    (all.len() as f64 / elapsed, q(0.5), q(0.95))
}

fn main() {
    let secs: u64 = std::env::var("PG_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let db = format!("nfai_bench_pool_{}", std::process::id());
    psql("postgres", &format!("CREATE DATABASE {db}"));
    let ok = Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-i",
            "-q",
            "-s",
            "10",
            &db,
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "pgbench -i");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("CPU: {}", cpu());
    println!("{CLIENTS} clients, {secs} s per round, {ROUNDS} rounds alternated");
    println!(
        "{:<22} {:>12} {:>10} {:>10} {:>14}",
        "client", "fetches/s", "p50 ms", "p95 ms", "vs pgbench -S"
    );
    for mode in [StatementMode::Prepared, StatementMode::Unnamed] {
        let mut config = PgConfig::new(format!("{SERVER}/{db}"));
        config.max_size = CLIENTS;
        config.statement_mode = mode;
        let pool = PgPool::connect(config).unwrap();
        // Warm: open the connections and prepare.
        rt.block_on(pool_round(&pool, 1));
        for round in 0..ROUNDS {
            let base = pgbench(&db, secs);
            let (rate, p50, p95) = rt.block_on(pool_round(&pool, secs));
            println!(
                "{:<22} {:>12.0} {:>10} {:>10} {:>14}",
                format!("pgbench -S (round {})", round + 1),
                base,
                "-",
                "-",
                "1.00x"
            );
            println!(
                "{:<22} {:>12.0} {:>10.3} {:>10.3} {:>13.2}x",
                format!("nfai pool {}", mode.as_str()),
                rate,
                p50.as_secs_f64() * 1e3,
                p95.as_secs_f64() * 1e3,
                rate / base
            );
        }
    }
    drop(rt);
    psql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
}
