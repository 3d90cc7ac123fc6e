//! The demo CRM of nfai: [`SCHEMA`] (customers, contacts, deals, tickets, activities) and a
//! deterministic generator of Vietnamese and English records, loaded with `COPY` ([`load`]).
//!
//! A seed and a total row count fix every row: each row is made from (seed, table, id) alone
//! (`rows`), so tests can rebuild the text of any row without reading the database.

pub mod rows;
pub mod text;
pub mod time;

use bytes::Bytes;
use futures::SinkExt;
use tokio_postgres::Client;

pub use rows::Plan;

/// The tables, their triggers and indexes (idempotent: `CREATE … IF NOT EXISTS`).
pub const SCHEMA: &str = include_str!("../schema.sql");

/// The nfai config that indexes the demo.
pub const NFAI_TOML: &str = include_str!("../nfai.toml");

/// Drops the demo tables (children first).
pub const DROP: &str =
    "DROP TABLE IF EXISTS activities, tickets, deals, contacts, customers CASCADE";

/// Rows sent per COPY chunk.
const CHUNK_ROWS: u64 = 2_000;

/// The tables in load order, with their COPY column lists.
pub const TABLES: [(&str, &str); 5] = [
    (
        "customers",
        "id, name, industry, city, country, lang, tier, email, phone, created_at, updated_at",
    ),
    (
        "contacts",
        "id, customer_id, full_name, title, email, phone, lang, created_at, updated_at",
    ),
    (
        "deals",
        "id, customer_id, title, stage, amount, currency, close_date, owner, lang, created_at, updated_at",
    ),
    (
        "tickets",
        "id, customer_id, contact_id, subject, body, status, priority, lang, created_at, updated_at",
    ),
    (
        "activities",
        "id, customer_id, deal_id, kind, body, lang, occurred_at, created_at, updated_at",
    ),
];

/// Row `id` of table number `table` (an index into [`TABLES`]) as COPY text fields.
pub fn row(seed: u64, plan: &Plan, table: usize, id: u64) -> Vec<String> {
    match table {
        0 => rows::customer(seed, id),
        1 => rows::contact(seed, plan, id),
        2 => rows::deal(seed, plan, id),
        3 => rows::ticket(seed, plan, id),
        _ => rows::activity(seed, plan, id),
    }
}

/// Rows of table number `table` in the plan.
pub fn table_rows(plan: &Plan, table: usize) -> u64 {
    match table {
        0 => plan.customers,
        1 => plan.contacts,
        2 => plan.deals,
        3 => plan.tickets,
        _ => plan.activities,
    }
}

/// Appends one row in COPY text format (tab-separated, `\N` kept as NULL, specials escaped).
pub fn copy_line(fields: &[String], out: &mut Vec<u8>) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        if f == "\\N" {
            out.extend_from_slice(b"\\N");
            continue;
        }
        for b in f.bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => out.push(b),
            }
        }
    }
    out.push(b'\n');
}

/// Creates the schema (dropping the demo tables first when `reset`) and loads `total` rows
/// made from `seed`, table by table with `COPY … FROM STDIN`. `progress` hears each table's
/// name and the rows loaded so far in it.
pub async fn load(
    client: &Client,
    total: u64,
    seed: u64,
    reset: bool,
    mut progress: impl FnMut(&str, u64, u64),
) -> anyhow::Result<Plan> {
    if reset {
        client.batch_execute(DROP).await?;
    }
    client.batch_execute(SCHEMA).await?;
    let plan = Plan::for_total(total);
    for (t, (name, columns)) in TABLES.iter().enumerate() {
        let rows = table_rows(&plan, t);
        let sink = client
            .copy_in::<_, Bytes>(&format!("COPY {name} ({columns}) FROM STDIN"))
            .await?;
        futures::pin_mut!(sink);
        let mut buf = Vec::with_capacity(1 << 20);
        let mut id = 1;
        while id <= rows {
            let end = (id + CHUNK_ROWS).min(rows + 1);
            for i in id..end {
                copy_line(&row(seed, &plan, t, i), &mut buf);
            }
            sink.send(Bytes::from(std::mem::take(&mut buf))).await?;
            progress(name, end - 1, rows);
            id = end;
        }
        sink.as_mut().finish().await?;
    }
    client.batch_execute("ANALYZE").await?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_depend_on_the_seed_only_and_both_languages_appear() {
        let plan = Plan::for_total(1_000);
        assert_eq!(plan.total(), 1_000);
        assert_eq!(row(7, &plan, 3, 42), row(7, &plan, 3, 42));
        assert_ne!(row(7, &plan, 3, 42), row(8, &plan, 3, 42));
        let langs: std::collections::HashSet<_> =
            (1..=50).map(|id| rows::customer_lang(7, id)).collect();
        assert_eq!(langs.len(), 2);
        let vi = (1..=plan.tickets)
            .map(|id| row(7, &plan, 3, id))
            .find(|r| r.get(7).is_some_and(|l| l == "vi"));
        assert!(vi.is_some_and(|r| r.get(4).is_some_and(|b| !b.is_ascii())));
    }

    #[test]
    fn copy_lines_escape_specials_and_keep_nulls() {
        let mut out = Vec::new();
        copy_line(&["a\tb\\c\nd".into(), "\\N".into()], &mut out);
        assert_eq!(out, b"a\\tb\\\\c\\nd\t\\N\n");
    }
}
