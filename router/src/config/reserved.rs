//! Sections reserved for what comes next, so that every part agrees on their names now:
//! `[data]`, `[database]`, `[redis]`, `[auth]`, `[logging]`, `[retrieval]`, `[files]` and
//! `[responses]`.
//!
//! Each is parsed, layered (flag or `NFAI_*` variable, then the file, then the default) and
//! validated at start like every other setting. Values that nothing in this version uses are
//! named in a warning at start, never silently ignored. Every secret has a `*_FILE` twin.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::ensure;
use nfai_retrieval::pg::{PgConfig, Recycling, StatementMode};
use nfai_retrieval::sources::SourceConfig;
use serde::Deserialize;

use super::cli::ServeArgs;
use super::defaults;
use super::secret::{Secret, secret_or_file};

/// `[data]`: where nfai keeps its own state (uploaded files, local vector stores).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFile {
    /// `NFAI_DATA_DIR` [default: ~/.local/share/nfai].
    pub dir: Option<PathBuf>,
}

/// `[database]`: the PostgreSQL database of the CRM and of nfai's records.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFile {
    /// `postgres://…`; `NFAI_DATABASE_URL`.
    pub url: Option<Secret>,
    /// File holding the URL; `NFAI_DATABASE_URL_FILE`.
    pub url_file: Option<PathBuf>,
    /// Connections in the pool [default: 8].
    pub max_connections: Option<usize>,
    /// `prepared`, `unnamed` or `transaction` (the last two work through PgBouncer in
    /// transaction mode) [default: prepared].
    pub statement_mode: Option<String>,
    /// Longest wait for a free connection, then 503 [default: 2000].
    pub wait_timeout_ms: Option<u64>,
    /// Longest time to open a connection [default: 5000].
    pub create_timeout_ms: Option<u64>,
    /// Longest recycling check of a pooled connection [default: 2000].
    pub recycle_timeout_ms: Option<u64>,
    /// `fast` (a connection the server closed is replaced) or `verified` (also a round trip
    /// before each reuse) [default: fast].
    pub recycling: Option<String>,
}

/// The pool settings of `[database]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabasePool {
    pub statement_mode: StatementMode,
    pub recycling: Recycling,
    pub wait_timeout: Duration,
    pub create_timeout: Duration,
    pub recycle_timeout: Duration,
}

impl DatabasePool {
    pub fn layer(f: &DatabaseFile) -> anyhow::Result<Self> {
        let ms = |v: Option<u64>, default: u64, name: &str| -> anyhow::Result<Duration> {
            let v = v.unwrap_or(default);
            ensure!(v >= 1, "database.{name} must be at least 1");
            Ok(Duration::from_millis(v))
        };
        Ok(Self {
            statement_mode: f
                .statement_mode
                .as_deref()
                .unwrap_or("prepared")
                .parse::<StatementMode>()?,
            recycling: f
                .recycling
                .as_deref()
                .unwrap_or("fast")
                .parse::<Recycling>()?,
            wait_timeout: ms(f.wait_timeout_ms, 2_000, "wait_timeout_ms")?,
            create_timeout: ms(f.create_timeout_ms, 5_000, "create_timeout_ms")?,
            recycle_timeout: ms(f.recycle_timeout_ms, 2_000, "recycle_timeout_ms")?,
        })
    }

    /// The pool config for `url` with `max_size` connections.
    pub fn pg_config(&self, url: &str, max_size: usize) -> PgConfig {
        let mut c = PgConfig::new(url);
        c.max_size = max_size;
        c.statement_mode = self.statement_mode;
        c.recycling = self.recycling;
        c.wait_timeout = self.wait_timeout;
        c.create_timeout = self.create_timeout;
        c.recycle_timeout = self.recycle_timeout;
        c
    }
}

/// `[redis]`: shared caches and rate limits across replicas.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    /// `redis://…`; `NFAI_REDIS_URL`.
    pub url: Option<Secret>,
    /// File holding the URL; `NFAI_REDIS_URL_FILE`.
    pub url_file: Option<PathBuf>,
    /// Prefix of every key nfai writes [default: "nfai:"]; `NFAI_REDIS_KEY_PREFIX`.
    pub key_prefix: Option<String>,
}

/// `[auth]`: API keys of the callers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// File listing the API keys; `NFAI_AUTH_KEYS_FILE`.
    pub keys_file: Option<PathBuf>,
    /// Serve without API keys even on a public address [default: false];
    /// `NFAI_ALLOW_UNAUTHENTICATED`. On 127.0.0.1 no key is needed until one exists.
    pub allow_unauthenticated: Option<bool>,
    /// `/metrics` needs a key or the admin token [default: false].
    pub private_metrics: Option<bool>,
}

/// `[logging]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingFile {
    /// `text` or `json`; `NFAI_LOG_FORMAT` [default: text].
    pub format: Option<String>,
    /// Log request and response bodies [default: false].
    pub log_bodies: Option<bool>,
}

/// `[retrieval]`: vector stores and the sources indexed into them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalFile {
    /// A Qdrant server (`http://qdrant:6334`); `NFAI_QDRANT_URL`. Absent: in-process stores.
    pub qdrant_url: Option<String>,
    /// File holding Qdrant's API key; `NFAI_QDRANT_API_KEY_FILE`.
    pub qdrant_api_key_file: Option<PathBuf>,
    /// Files ingested (extracted, chunked, embedded, stored) at once [default: 64].
    pub ingest_concurrency: Option<usize>,
    /// File bytes ingested at once; a larger file is ingested alone [default: 268435456].
    pub ingest_max_bytes: Option<u64>,
    /// `[[retrieval.sources]]`: PostgreSQL queries whose rows are synced into vector stores.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

/// `[files]`: uploaded files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesFile {
    /// The largest upload accepted, in bytes [default: 536870912].
    pub max_bytes: Option<u64>,
}

/// `[responses]`: stored responses (`/v1/responses` with `store`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsesFile {
    /// Responses kept; past it the oldest are removed [default: 10000];
    /// `NFAI_RESPONSES_MAX_STORED`.
    pub max_stored: Option<usize>,
    /// Responses older than this are removed [default: kept until `max_stored` is reached];
    /// `NFAI_RESPONSES_RETENTION_SECS`.
    pub retention_secs: Option<u64>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The reserved sections, validated.
#[derive(Debug, Clone)]
pub struct ReservedConfig {
    pub data_dir: PathBuf,
    pub database_url: Option<Secret>,
    pub database_max_connections: usize,
    pub redis_url: Option<Secret>,
    pub redis_key_prefix: String,
    pub auth_keys_file: Option<PathBuf>,
    pub allow_unauthenticated: bool,
    pub private_metrics: bool,
    pub log_format: LogFormat,
    pub log_bodies: bool,
    pub qdrant_url: Option<String>,
    pub qdrant_api_key: Option<Secret>,
    /// `[[retrieval.sources]]` entries, as written.
    pub retrieval_sources: usize,
    /// `[database]`'s pool settings.
    pub database_pool: DatabasePool,
    /// `[[retrieval.sources]]`, validated.
    pub sources: Vec<SourceConfig>,
    pub files_max_bytes: u64,
    /// `[retrieval] ingest_concurrency`: at least 1.
    pub ingest_concurrency: usize,
    /// `[retrieval] ingest_max_bytes`: at least 1 MiB.
    pub ingest_max_bytes: u64,
    /// `[responses] max_stored`: at least 1.
    pub responses_max_stored: usize,
    /// `[responses] retention_secs`: at least 1 when set.
    pub responses_retention_secs: Option<u64>,
}

/// The files of the reserved sections, as read from the TOML file.
#[derive(Debug, Default)]
pub struct ReservedFiles {
    pub data: DataFile,
    pub database: DatabaseFile,
    pub redis: RedisFile,
    pub auth: AuthFile,
    pub logging: LoggingFile,
    pub retrieval: RetrievalFile,
    pub files: FilesFile,
    pub responses: ResponsesFile,
}

fn url_with_scheme(url: &str, schemes: &[&str], what: &str) -> anyhow::Result<()> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    ensure!(
        scheme.is_some_and(|s| schemes.contains(&s)),
        "{what} must be a URL starting with {}",
        schemes
            .iter()
            .map(|s| format!("{s}://"))
            .collect::<Vec<_>>()
            .join(" or ")
    );
    Ok(())
}

fn readable(path: &Path, what: &str) -> anyhow::Result<()> {
    ensure!(
        path.is_file(),
        "{what} {} does not exist or is not a file",
        path.display()
    );
    Ok(())
}

/// The home-relative default data dir: `$XDG_DATA_HOME/nfai`, else `~/.local/share/nfai`.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("nfai");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/nfai")
}

impl ReservedConfig {
    /// Layers flags and variables over the file over the defaults, and validates.
    pub fn layer(args: &ServeArgs, f: ReservedFiles) -> anyhow::Result<Self> {
        let database_pool = DatabasePool::layer(&f.database)?;
        let database_url_file = args.database_url_file.clone().or(f.database.url_file);
        let database_url = secret_or_file(
            args.database_url.as_ref().or(f.database.url.as_ref()),
            database_url_file.as_deref(),
            "database URL",
        )?;
        if let Some(url) = &database_url {
            url_with_scheme(url.expose(), &["postgres", "postgresql"], "database.url")?;
        }
        let database_max_connections = f
            .database
            .max_connections
            .unwrap_or(defaults::DATABASE_MAX_CONNECTIONS);
        ensure!(
            database_max_connections >= 1,
            "database.max_connections must be at least 1"
        );
        let mut source_names = std::collections::HashSet::new();
        for source in &f.retrieval.sources {
            source.validate().map_err(anyhow::Error::msg)?;
            ensure!(
                source_names.insert(source.name.clone()),
                "retrieval.sources: the name `{}` is used twice",
                source.name
            );
            ensure!(
                source.database_url_env.is_some() || database_url.is_some(),
                "retrieval.sources `{}` needs a database: set database.url (NFAI_DATABASE_URL) or its database_url_env",
                source.name
            );
        }
        let redis_url_file = args.redis_url_file.clone().or(f.redis.url_file);
        let redis_url = secret_or_file(
            args.redis_url.as_ref().or(f.redis.url.as_ref()),
            redis_url_file.as_deref(),
            "Redis URL",
        )?;
        if let Some(url) = &redis_url {
            url_with_scheme(url.expose(), &["redis", "rediss"], "redis.url")?;
        }
        let auth_keys_file = args.auth_keys_file.clone().or(f.auth.keys_file);
        if let Some(path) = &auth_keys_file {
            readable(path, "auth.keys_file")?;
        }
        let allow_unauthenticated = args.allow_unauthenticated
            || f.auth
                .allow_unauthenticated
                .unwrap_or(defaults::ALLOW_UNAUTHENTICATED);
        let private_metrics = f.auth.private_metrics.unwrap_or(false);
        let redis_key_prefix = std::env::var("NFAI_REDIS_KEY_PREFIX")
            .ok()
            .or(f.redis.key_prefix)
            .unwrap_or_else(|| defaults::REDIS_KEY_PREFIX.to_string());
        let log_format = match args.log_format.clone().or(f.logging.format).as_deref() {
            // JSON lines for a log collector, text for a person at a terminal.
            None if !std::io::IsTerminal::is_terminal(&std::io::stdout()) => LogFormat::Json,
            None => LogFormat::Text,
            Some(f) if f == defaults::LOG_FORMAT => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                anyhow::bail!("logging.format must be \"text\" or \"json\", got {other:?}")
            }
        };
        let log_bodies = f.logging.log_bodies.unwrap_or(false);
        let qdrant_url = args.qdrant_url.clone().or(f.retrieval.qdrant_url);
        if let Some(url) = &qdrant_url {
            url_with_scheme(url, &["http", "https"], "retrieval.qdrant_url")?;
        }
        let key_file = args
            .qdrant_api_key_file
            .clone()
            .or(f.retrieval.qdrant_api_key_file);
        let qdrant_api_key = secret_or_file(None, key_file.as_deref(), "Qdrant API key")?;
        let files_max_bytes = f.files.max_bytes.unwrap_or(defaults::FILES_MAX_BYTES);
        ensure!(files_max_bytes >= 1, "files.max_bytes must be at least 1");
        let ingest_concurrency = f
            .retrieval
            .ingest_concurrency
            .unwrap_or(defaults::INGEST_CONCURRENCY);
        ensure!(
            (1..=256).contains(&ingest_concurrency),
            "retrieval.ingest_concurrency must be between 1 and 256"
        );
        let ingest_max_bytes = f
            .retrieval
            .ingest_max_bytes
            .unwrap_or(defaults::INGEST_MAX_BYTES);
        ensure!(
            ingest_max_bytes >= 1024 * 1024,
            "retrieval.ingest_max_bytes must be at least 1048576 (1 MiB)"
        );
        let responses_max_stored = args
            .responses_max_stored
            .or(f.responses.max_stored)
            .unwrap_or(defaults::RESPONSES_MAX_STORED);
        ensure!(
            responses_max_stored >= 1,
            "responses.max_stored must be at least 1"
        );
        let responses_retention_secs = args.responses_retention_secs.or(f.responses.retention_secs);
        ensure!(
            responses_retention_secs.is_none_or(|s| s >= 1),
            "responses.retention_secs must be at least 1"
        );
        let data_dir = args
            .data_dir
            .clone()
            .or(f.data.dir)
            .unwrap_or_else(default_data_dir);
        ensure!(
            !data_dir.as_os_str().is_empty(),
            "data.dir must not be empty"
        );
        let c = Self {
            data_dir,
            database_url,
            database_max_connections,
            redis_url,
            redis_key_prefix,
            auth_keys_file,
            allow_unauthenticated,
            private_metrics,
            log_format,
            log_bodies,
            qdrant_url,
            qdrant_api_key,
            retrieval_sources: f.retrieval.sources.len(),
            database_pool,
            sources: f.retrieval.sources,
            files_max_bytes,
            ingest_concurrency,
            ingest_max_bytes,
            responses_max_stored,
            responses_retention_secs,
        };
        Ok(c)
    }
}
