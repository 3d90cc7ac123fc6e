//! Hit@5 over the demo CRM: questions a CRM user asks about its records, in each record's own
//! language (Vietnamese or English), searched in the demo's store `crm` as the app serves it
//! (multilingual-e5-small, 5 results). A question hits when one of its labelled records is among
//! the five results.
//!
//! Questions and labels come from the database, not from the search: for the first
//! `HIT_PER_KIND` rows (default 15) of each kind, a question built from the row's facts, and
//! as labels every row of that table holding the same facts:
//! - tickets with an order number: "What problem did <company> have with order <n>?", the ticket
//!   that names order `n`;
//! - deals: "What stage is our <product> deal with <company> in?", the deals of that title;
//! - customers: "Which city is <company> based in?", the customers of that name;
//! - activities (not emails, which the demo does not index): "What was the call with <company>
//!   about?" (meeting, note likewise), that customer's activities of that kind.
//!
//! The same tickets asked in the other language are reported apart, as cross-lingual.
//!
//! `cargo bench -p nfai-benches --bench demo_hit_at_5` (after `nfai models fetch`);
//! `HIT_ROWS` demo rows (default 2,000).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program stops at the first failed setup step"
)]

use std::collections::HashSet;

use nfai_tests::common::{client, env_or};
use nfai_tests::demo::DemoCrm;
use serde_json::{Value, json};

/// One labelled question.
struct Question {
    kind: &'static str,
    lang: String,
    text: String,
    /// File ids (`<source>:<row id>`) that answer it.
    labels: HashSet<String>,
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn ids(rows: &[tokio_postgres::Row], source: &str) -> HashSet<String> {
    rows.iter()
        .map(|r| format!("{source}:{}", r.get::<_, i64>(0)))
        .collect()
}

/// The order number in a ticket's subject.
fn order_number(subject: &str) -> Option<String> {
    subject
        .split(|c: char| !c.is_ascii_digit())
        .find(|d| d.len() >= 4)
        .map(str::to_owned)
}

fn other(lang: &str) -> &'static str {
    if lang == "vi" { "en" } else { "vi" }
}

fn ticket_question(lang: &str, company: &str, order: &str) -> String {
    if lang == "vi" {
        format!("{company} gặp vấn đề gì với đơn hàng {order}?")
    } else {
        format!("What problem did {company} have with order {order}?")
    }
}

async fn questions(demo: &DemoCrm, per_kind: i64) -> (Vec<Question>, Vec<Question>) {
    let mut same = Vec::new();
    let mut cross = Vec::new();
    let live = "deleted_at IS NULL";

    let tickets = demo
        .query(&format!(
            "SELECT t.id, t.lang, t.subject, c.name FROM tickets t JOIN customers c ON c.id = t.customer_id \
             WHERE t.{live} AND c.{live} AND t.subject ~ '[0-9]{{4,}}' ORDER BY t.id LIMIT {per_kind}"
        ))
        .await;
    for r in &tickets {
        let (lang, subject, company): (String, String, String) = (r.get(1), r.get(2), r.get(3));
        let order = order_number(&subject).expect("the query picks subjects with a number");
        let labels: HashSet<String> = [format!("tickets:{}", r.get::<_, i64>(0))].into();
        cross.push(Question {
            kind: "ticket, asked in the other language",
            lang: other(&lang).to_owned(),
            text: ticket_question(other(&lang), &company, &order),
            labels: labels.clone(),
        });
        same.push(Question {
            kind: "ticket by order number",
            text: ticket_question(&lang, &company, &order),
            lang,
            labels,
        });
    }

    let deals = demo
        .query(&format!(
            "SELECT d.id, d.lang, d.title, c.name FROM deals d JOIN customers c ON c.id = d.customer_id \
             WHERE d.{live} AND c.{live} ORDER BY d.id LIMIT {per_kind}"
        ))
        .await;
    for r in &deals {
        let (lang, title, company): (String, String, String) = (r.get(1), r.get(2), r.get(3));
        let (product, text) = if lang == "vi" {
            let p = title
                .strip_prefix("Hợp đồng cung cấp ")
                .and_then(|t| t.split(" cho ").next())
                .unwrap_or(&title);
            (
                p,
                format!("Hợp đồng {p} với {company} đang ở giai đoạn nào?"),
            )
        } else {
            let p = title
                .strip_prefix("Supply of ")
                .and_then(|t| t.split(" to ").next())
                .unwrap_or(&title);
            (p, format!("What stage is our {p} deal with {company} in?"))
        };
        assert!(!product.is_empty());
        let rows = demo
            .query(&format!(
                "SELECT id FROM deals WHERE title = {} AND {live}",
                quoted(&title)
            ))
            .await;
        same.push(Question {
            kind: "deal by product and company",
            lang,
            text,
            labels: ids(&rows, "deals"),
        });
    }

    let customers = demo
        .query(&format!(
            "SELECT id, lang, name FROM customers WHERE {live} ORDER BY id LIMIT {per_kind}"
        ))
        .await;
    for r in &customers {
        let (lang, name): (String, String) = (r.get(1), r.get(2));
        let text = if lang == "vi" {
            format!("{name} đặt trụ sở ở thành phố nào?")
        } else {
            format!("Which city is {name} based in?")
        };
        let rows = demo
            .query(&format!(
                "SELECT id FROM customers WHERE name = {} AND {live}",
                quoted(&name)
            ))
            .await;
        same.push(Question {
            kind: "customer by name",
            lang,
            text,
            labels: ids(&rows, "customers"),
        });
    }

    let activities = demo
        .query(&format!(
            "SELECT a.id, a.lang, a.kind, c.name FROM activities a JOIN customers c ON c.id = a.customer_id \
             WHERE a.kind <> 'email' AND a.{live} AND c.{live} ORDER BY a.id LIMIT {per_kind}"
        ))
        .await;
    for r in &activities {
        let (lang, kind, company): (String, String, String) = (r.get(1), r.get(2), r.get(3));
        let text = match (lang.as_str(), kind.as_str()) {
            ("vi", "call") => format!("Cuộc gọi với {company} bàn về chuyện gì?"),
            ("vi", "meeting") => format!("Buổi họp với {company} diễn ra thế nào?"),
            ("vi", _) => format!("Ghi chú về {company} nói gì?"),
            (_, "call") => format!("What was the call with {company} about?"),
            (_, "meeting") => format!("How did the meeting with {company} go?"),
            _ => format!("What does the note on {company} say?"),
        };
        let rows = demo
            .query(&format!(
                "SELECT a.id FROM activities a JOIN customers c ON c.id = a.customer_id \
                 WHERE c.name = {} AND a.kind = {} AND a.{live}",
                quoted(&company),
                quoted(&kind)
            ))
            .await;
        same.push(Question {
            kind: "activity by company and kind",
            lang,
            text,
            labels: ids(&rows, "activities"),
        });
    }
    (same, cross)
}

/// The file ids of the first five results for `q`.
async fn top5(base: &str, store: &str, q: &str) -> Vec<String> {
    let res: Value = client()
        .post(format!("{base}/v1/vector_stores/{store}/search"))
        .json(&json!({"query": q, "max_num_results": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    res["data"]
        .as_array()
        .unwrap_or_else(|| panic!("search failed: {res}"))
        .iter()
        .map(|h| h["file_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Hits per group, in the order groups first appear.
fn tally(
    results: &[(&Question, bool)],
    group: impl Fn(&Question) -> String,
) -> Vec<(String, usize, usize)> {
    let mut out: Vec<(String, usize, usize)> = Vec::new();
    for (q, hit) in results {
        let g = group(q);
        match out.iter_mut().find(|(name, _, _)| *name == g) {
            Some(row) => {
                row.1 += usize::from(*hit);
                row.2 += 1;
            }
            None => out.push((g, usize::from(*hit), 1)),
        }
    }
    out
}

fn main() {
    let rows = env_or("HIT_ROWS", 2_000) as u64;
    let per_kind = env_or("HIT_PER_KIND", 15) as i64;
    let demo = DemoCrm::start("hit5", rows);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (same, cross) = rt.block_on(questions(&demo, per_kind));
    let mut answered = Vec::new();
    let mut misses = Vec::new();
    rt.block_on(async {
        for q in same.iter().chain(&cross) {
            assert!(!q.labels.is_empty(), "{}: no label", q.text);
            let found = top5(&demo.server.base, &demo.store, &q.text).await;
            let hit = found.iter().any(|f| q.labels.contains(f));
            if !hit {
                misses.push(format!("{} -> {:?}", q.text, found));
            }
            answered.push((q, hit));
        }
    });
    let (same_results, cross_results) = answered.split_at(same.len());
    println!(
        "CPU: {}; {rows} demo rows; {} questions in the records' languages, {} cross-lingual",
        nfai_tests::fleet::cpu_model(),
        same.len(),
        cross.len()
    );
    println!("| questions | count | hit@5 |");
    println!("|---|---:|---:|");
    let row = |name: &str, hits: usize, n: usize| {
        println!(
            "| {name} | {n} | {:.3} ({hits}/{n}) |",
            hits as f64 / n.max(1) as f64
        );
    };
    let all: usize = same_results.iter().filter(|(_, h)| *h).count();
    row("all, in the record's language", all, same_results.len());
    for (g, hits, n) in tally(same_results, |q| q.kind.to_owned()) {
        row(&g, hits, n);
    }
    for (g, hits, n) in tally(same_results, |q| format!("in {}", q.lang)) {
        row(&g, hits, n);
    }
    let cross_hits = cross_results.iter().filter(|(_, h)| *h).count();
    row(
        "tickets asked in the other language",
        cross_hits,
        cross_results.len(),
    );
    for m in &misses {
        println!("miss: {m}");
    }
    demo.finish();
}
