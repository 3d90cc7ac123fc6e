//! `crm-demo`: creates the demo CRM schema and loads deterministic records with COPY.
//!
//! `crm-demo --rows 10000 --seed 42 --reset` (database from `--url`, else `NFAI_DATABASE_URL`).

use std::time::Instant;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Load the demo CRM (Vietnamese and English records) into PostgreSQL")]
struct Args {
    /// postgres://… URL of the database to fill.
    #[arg(long, env = "NFAI_DATABASE_URL")]
    url: String,
    /// Total rows across the five tables (1000 to 1000000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1_000..=1_000_000))]
    rows: u64,
    /// Seed of the generator: the same seed and rows give the same records.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Drop the demo tables first.
    #[arg(long)]
    reset: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (client, connection) = tokio_postgres::connect(&args.url, tokio_postgres::NoTls).await?;
    let conn = tokio::spawn(connection);
    let started = Instant::now();
    let mut last = String::new();
    let plan = nfai_crm_demo::load(
        &client,
        args.rows,
        args.seed,
        args.reset,
        |table, done, of| {
            if done == of && last != table {
                eprintln!("{table}: {of} rows");
                last = table.to_owned();
            }
        },
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "loaded {} rows in {secs:.2}s ({:.0} rows/s)",
        plan.total(),
        plan.total() as f64 / secs.max(1e-9)
    );
    drop(client);
    conn.await??;
    Ok(())
}
