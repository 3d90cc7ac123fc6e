//! `nfai index [SOURCE]`: syncs `[[retrieval.sources]]` into their vector stores and waits
//! until the rows are embedded, with a progress line on the terminal.
//!
//! When a server holds the data directory (`<data dir>/server.json` names a live process),
//! the sync runs in that server through `POST /admin/vector_stores/{store}/sync` (the admin
//! token is needed); otherwise this process opens the data directory, loads the embedding
//! model and runs the sync itself. Either way a sync resumes from the source's checkpoint.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::backend::native::NativeBackend;
use crate::config::{Config, Secret};
use crate::registry::ModelRegistry;

/// How often the progress line is redrawn on a terminal, and printed otherwise.
const TICK: Duration = Duration::from_millis(250);
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Runs `nfai index` for every source, or only `only`.
pub async fn run(config: Config, only: Option<String>) -> anyhow::Result<()> {
    let selected: Vec<(String, String)> = config
        .reserved
        .sources
        .iter()
        .filter(|s| only.as_deref().is_none_or(|o| o == s.name))
        .map(|s| (s.name.clone(), s.vector_store.clone()))
        .collect();
    if selected.is_empty() {
        let names: Vec<_> = config.reserved.sources.iter().map(|s| &s.name).collect();
        anyhow::bail!(match only {
            Some(o) =>
                format!("no source named `{o}` in [[retrieval.sources]] (sources: {names:?})"),
            None => "no [[retrieval.sources]] in the configuration".to_owned(),
        });
    }
    let mut failed = 0;
    match crate::server_file::running(&config.reserved.data_dir) {
        Some(server) => {
            eprintln!("nfai index: syncing through the server at {}", server.url);
            let admin = Admin {
                url: server.url,
                token: config.admin_token.clone(),
                client: reqwest::Client::new(),
            };
            for (name, store) in &selected {
                failed += u32::from(!remote(&admin, name, store).await?);
            }
        }
        None => {
            let database = crate::retrieval::database_pool(&config.reserved)?;
            let service = open(&config, database.as_ref())?;
            let sources = crate::retrieval::sources::start(
                &config.reserved,
                &config.reserved.data_dir,
                service.clone(),
                false,
            )?
            .context("no sources")?;
            for (name, store) in &selected {
                failed += u32::from(!local(&sources, &service, name, store).await?);
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} source(s) failed");
    Ok(())
}

/// The retrieval service on the data directory (or the database), with the native embedding
/// models.
fn open(
    config: &Config,
    database: Option<&nfai_retrieval::pg::PgPool>,
) -> anyhow::Result<nfai_retrieval::service::RetrievalService> {
    let registry = ModelRegistry::start(
        config.catalog.clone(),
        &config.serve,
        &config.model_dir,
        config.engine.clone(),
        config.cache.clone(),
    )?;
    let native = Arc::new(NativeBackend::new(Arc::new(registry)));
    crate::retrieval::start(&config.reserved, native, database)
}

/// Syncs one source in this process; `false` when it failed.
async fn local(
    sources: &crate::retrieval::sources::Sources,
    service: &nfai_retrieval::service::RetrievalService,
    name: &str,
    store: &str,
) -> anyhow::Result<bool> {
    let mut progress = Progress::new(name);
    let status = sources.runner.watch(name).context("unknown source")?;
    let sync = sources.runner.sync_and_wait(name);
    tokio::pin!(sync);
    let mut tick = tokio::time::interval(TICK);
    let end = loop {
        tokio::select! {
            s = &mut sync => break s.context("unknown source")?,
            _ = tick.tick() => {
                let counts = crate::retrieval::sources::store_counts(service, store).await;
                progress.show(&to_json(&status.borrow()), counts.map(|c| (c.completed + c.failed, c.total)));
            }
        }
    };
    let end = to_json(&end);
    if end["state"] == "failed" {
        progress.finish(&end, None);
        return Ok(false);
    }
    loop {
        let counts = crate::retrieval::sources::store_counts(service, store).await;
        progress.show(&end, counts.map(|c| (c.completed + c.failed, c.total)));
        if counts.is_none_or(|c| c.in_progress == 0) {
            progress.finish(&end, counts.map(|c| (c.completed, c.failed)));
            return Ok(counts.is_none_or(|c| c.failed == 0));
        }
        tokio::time::sleep(TICK).await;
    }
}

fn to_json(s: &nfai_retrieval::sources::SourceStatus) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// The running server's admin API.
struct Admin {
    url: String,
    token: Option<Secret>,
    client: reqwest::Client,
}

impl Admin {
    async fn call(&self, post: bool, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.url);
        let mut req = if post {
            self.client.post(&url)
        } else {
            self.client.get(&url)
        };
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot reach nfai at {}", self.url))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = body["error"]["message"].as_str().unwrap_or("no message");
            anyhow::bail!("{status}: {msg}");
        }
        Ok(body)
    }
}

/// The source's status and the store's (completed + failed, total) in an admin answer.
fn read_page(page: &Value) -> (Value, Option<(u64, u64)>, u64) {
    let status = page["data"][0].clone();
    let c = &page["file_counts"];
    let counts = c["total"].as_u64().map(|t| {
        (
            c["completed"].as_u64().unwrap_or(0) + c["failed"].as_u64().unwrap_or(0),
            t,
        )
    });
    (status, counts, c["in_progress"].as_u64().unwrap_or(0))
}

/// Syncs one source through the server; `false` when it failed.
async fn remote(admin: &Admin, name: &str, store: &str) -> anyhow::Result<bool> {
    let path = format!(
        "/admin/vector_stores/{}/sync?source={}",
        url_part(store),
        url_part(name)
    );
    let before = admin.call(false, &path).await?;
    let (status, _, _) = read_page(&before);
    // A sync already running ends first; the one asked for here runs after it.
    let target = status["completed_syncs"].as_u64().unwrap_or(0)
        + if status["state"] == "idle" || status["state"] == "failed" {
            1
        } else {
            2
        };
    admin.call(true, &path).await?;
    let mut progress = Progress::new(name);
    let mut synced = false;
    loop {
        tokio::time::sleep(TICK).await;
        let page = admin.call(false, &path).await?;
        let (status, counts, in_progress) = read_page(&page);
        progress.show(&status, counts);
        if status["state"] == "failed" && status["completed_syncs"].as_u64() < Some(target) {
            progress.finish(&status, None);
            return Ok(false);
        }
        synced |= status["completed_syncs"].as_u64() >= Some(target);
        if synced && in_progress == 0 {
            let c = &page["file_counts"];
            let failed = c["failed"].as_u64().unwrap_or(0);
            progress.finish(
                &status,
                Some((c["completed"].as_u64().unwrap_or(0), failed)),
            );
            return Ok(failed == 0);
        }
    }
}

/// Percent-encodes a path or query part.
fn url_part(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The progress line: redrawn in place on a terminal, printed every few seconds otherwise.
struct Progress {
    name: String,
    started: Instant,
    tty: bool,
    last_log: Option<Instant>,
}

impl Progress {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            started: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            last_log: None,
        }
    }

    fn show(&mut self, status: &Value, embedded: Option<(u64, u64)>) {
        let line = line(&self.name, status, embedded, self.started.elapsed());
        if self.tty {
            eprint!("\r{line}\x1b[K");
        } else if self.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            self.last_log = Some(Instant::now());
            eprintln!("{line}");
        }
    }

    fn finish(&mut self, status: &Value, files: Option<(u64, u64)>) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
        let n = |k: &str| status[k].as_u64().unwrap_or(0);
        let took = self.started.elapsed().as_secs_f64();
        if status["state"] == "failed" {
            eprintln!(
                "{}: failed after {took:.1} s: {}",
                self.name,
                status["cause"].as_str().unwrap_or("unknown cause")
            );
            return;
        }
        let (done, failed) = files.unwrap_or((0, 0));
        eprintln!(
            "{}: {} rows read, {} upserted, {} unchanged, {} deleted; {done} files embedded{} in {took:.1} s",
            self.name,
            n("rows_read"),
            n("upserted"),
            n("unchanged"),
            n("deleted"),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
    }
}

/// One progress line: the sync's state and counters and a bar of embedded files.
fn line(name: &str, status: &Value, embedded: Option<(u64, u64)>, elapsed: Duration) -> String {
    let n = |k: &str| status[k].as_u64().unwrap_or(0);
    let state = status["state"].as_str().unwrap_or("?");
    let mut s = format!(
        "{name}: {state:<7} rows {:>7} (+{} ~{} -{})",
        n("rows_read"),
        n("upserted"),
        n("unchanged"),
        n("deleted")
    );
    if let Some((done, total)) = embedded.filter(|(_, t)| *t > 0) {
        const WIDTH: u64 = 24;
        let filled = (done.min(total) * WIDTH / total) as usize;
        s.push_str(&format!(
            " [{}{}] {done}/{total} embedded",
            "#".repeat(filled),
            "-".repeat(WIDTH as usize - filled)
        ));
    }
    if state == "paused" {
        s.push_str(&format!(
            " (waiting: {})",
            status["cause"].as_str().unwrap_or("?")
        ));
    }
    s.push_str(&format!(" {:.0}s", elapsed.as_secs_f64()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_counters_a_bar_and_a_pause_cause() {
        let status = serde_json::json!({
            "state": "paused", "rows_read": 120, "upserted": 100, "unchanged": 15,
            "deleted": 5, "cause": "database unavailable",
        });
        let l = line("tickets", &status, Some((50, 100)), Duration::from_secs(3));
        assert!(
            l.starts_with("tickets: paused  rows     120 (+100 ~15 -5)"),
            "{l}"
        );
        assert!(
            l.contains(&format!(
                "[{}{}] 50/100 embedded",
                "#".repeat(12),
                "-".repeat(12)
            )),
            "{l}"
        );
        assert!(
            l.contains("(waiting: database unavailable)") && l.ends_with(" 3s"),
            "{l}"
        );
    }

    #[test]
    fn path_parts_are_percent_encoded() {
        assert_eq!(url_part("crm store/ä"), "crm%20store%2F%C3%A4");
    }
}
