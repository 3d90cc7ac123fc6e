//! `[[retrieval.sources]]` in the server: one connection pool per database (the `[database]`
//! URL, or the variable a source names), and the [`SourceRunner`] that syncs them into their
//! vector stores, with checkpoints under `<data dir>/sources`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use nfai_retrieval::pg::PgPool;
use nfai_retrieval::service::RetrievalService;
use nfai_retrieval::sources::{CheckpointDir, SourceRunner};

use crate::config::reserved::ReservedConfig;
use crate::config::secret::{Secret, secret_or_file};

/// The running sources and the pools they read through.
#[derive(Debug, Clone)]
pub struct Sources {
    pub runner: SourceRunner,
    /// Each pool by its label: `default` for `[database]`, else the variable's name.
    pub pools: BTreeMap<String, PgPool>,
}

/// The URL of a source's database: `[database]`'s, or the variable `env` (or the file named by
/// `<env>_FILE`).
fn source_url(config: &ReservedConfig, env: Option<&str>) -> anyhow::Result<(String, Secret)> {
    let Some(var) = env else {
        let url = config
            .database_url
            .clone()
            .context("no database: set NFAI_DATABASE_URL or NFAI_DATABASE_URL_FILE")?;
        return Ok(("default".to_owned(), url));
    };
    let value = std::env::var(var).ok().map(Secret::new);
    let file = std::env::var_os(format!("{var}_FILE")).map(std::path::PathBuf::from);
    let url = secret_or_file(value.as_ref(), file.as_deref(), var)?
        .with_context(|| format!("{var} (or {var}_FILE) is not set"))?;
    Ok((var.to_owned(), url))
}

/// Starts the configured sources (`None` without any). Their pools are their own, apart from
/// the one nfai's records use, so a slow CRM query never holds up an upload or a key check.
/// Pools open no connection until used,
/// so a database that is down at start pauses its sources instead of stopping the server.
/// With `periodic` (the server), sources with an interval sync at once and then every
/// interval; without it (`nfai index`), a source syncs only when asked.
pub fn start(
    config: &ReservedConfig,
    data_dir: &Path,
    service: RetrievalService,
    periodic: bool,
) -> anyhow::Result<Option<Sources>> {
    if config.sources.is_empty() {
        return Ok(None);
    }
    let mut pools: BTreeMap<String, PgPool> = BTreeMap::new();
    let mut paired = Vec::with_capacity(config.sources.len());
    for source in &config.sources {
        let (label, url) = source_url(config, source.database_url_env.as_deref())
            .with_context(|| format!("retrieval.sources `{}`", source.name))?;
        let pool = match pools.get(&label) {
            Some(p) => p.clone(),
            None => {
                let pool = PgPool::connect(
                    config
                        .database_pool
                        .pg_config(url.expose(), config.database_max_connections),
                )
                .with_context(|| format!("the database pool `{label}`"))?;
                pools.insert(label, pool.clone());
                pool
            }
        };
        paired.push((source.clone(), pool));
    }
    let checkpoints = CheckpointDir::open(data_dir.join("sources"))
        .with_context(|| format!("opening {}", data_dir.join("sources").display()))?;
    let runner = SourceRunner::start(paired, service, checkpoints);
    // Sources with an interval sync once at start, then every interval.
    for source in config
        .sources
        .iter()
        .filter(|s| periodic && s.interval_secs.is_some())
    {
        runner.trigger(&source.name);
    }
    Ok(Some(Sources { runner, pools }))
}

/// The file counts of the store a source names (by id, else by name); `None` before the
/// store exists.
pub async fn store_counts(
    service: &RetrievalService,
    store: &str,
) -> Option<nfai_retrieval::service::FileCounts> {
    let id = service.find_shared_store(store).await.ok()??;
    service.store(&id).await.ok().map(|v| v.file_counts)
}
