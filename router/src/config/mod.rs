//! Configuration: one typed [`Config`] from CLI flags, `NFAI_*` environment variables and a TOML
//! file.
//!
//! Precedence: flag or environment variable (clap reads both, [`cli`]), then the file
//! ([`file`]), then the defaults, each declared once ([`defaults`]). The layering and every
//! check happen in one place, [`Config::from_serve_args`], before anything starts. Sections
//! reserved for what comes next are in [`reserved`], the route table's in [`routing`].

pub mod cli;
pub mod defaults;
pub mod file;
pub mod reserved;
pub mod routing;
pub mod secret;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub use self::cli::*;
pub use self::file::FileConfig;
use self::reserved::{ReservedConfig, ReservedFiles};
pub use self::secret::Secret;
use self::secret::{read_secret, secret_or_file};
use crate::catalog::Catalog;

/// Engine limits shared by every model.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Requests waiting per model before 429.
    pub queue_capacity: usize,
    /// A new request that would wait longer than this (ms) for a batch slot gets 429; 0: off.
    pub max_queue_wait_ms: u64,
    /// Prompt tokens per scheduler step.
    pub prefill_chunk: usize,
    /// Bytes of KV cache each chat model keeps for shared prompt prefixes (0: off); part of the
    /// model's memory estimate.
    pub prefix_cache_bytes: u64,
    /// Padded tokens per embedding batch.
    pub embed_batch_tokens: usize,
    /// Threads of the one compute pool all native models share.
    pub threads: usize,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: std::net::IpAddr,
    pub port: u16,
    pub max_body_bytes: usize,
    pub model_dir: PathBuf,
    pub fetch_missing: bool,
    /// Catalog ids (aliases resolved) to load at start.
    pub serve: Vec<String>,
    pub engine: EngineSettings,
    pub catalog: Catalog,
    /// Upstreams and routes; empty: every catalog model runs natively.
    pub routing: routing::RoutingConfig,
    /// Ids loaded at start; `/ready` is 200 once they are Ready.
    pub preload: Vec<String>,
    pub cache: nfai_cache::CacheConfig,
    /// `None` disables the admin API (every call answers 401).
    pub admin_token: Option<Secret>,
    /// `[data]`, `[database]`, `[redis]`, `[auth]`, `[logging]`, `[retrieval]`, `[files]`.
    pub reserved: ReservedConfig,
    /// `--tls-cert` and `--tls-key`: serve HTTPS.
    pub tls: Option<crate::tls::TlsFiles>,
    /// What the configuration does that its author should know (deprecated keys, reserved
    /// settings not used yet); logged at start.
    pub warnings: Vec<String>,
}

fn resolve_ids(catalog: &Catalog, names: &[String], key: &str) -> anyhow::Result<Vec<String>> {
    names
        .iter()
        .map(|n| {
            catalog
                .resolve(n.trim())
                .map(|e| e.id.clone())
                .with_context(|| format!("`{key}` names {n:?}, which is not in the catalog"))
        })
        .collect()
}

fn read_file(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

/// The first of: the flag or variable, the file's value, the default.
fn layer<T>(flag: Option<T>, file: Option<T>, default: impl FnOnce() -> T) -> T {
    flag.or(file).unwrap_or_else(default)
}

impl Config {
    /// Layers flags and variables over the file over the defaults, and validates.
    pub fn from_serve_args(args: &ServeArgs) -> anyhow::Result<Self> {
        let file = read_file(args.common.config.as_deref())?;
        let mut warnings = Vec::new();
        let catalog = Catalog::with_overrides(file.models)?;
        let routing =
            routing::RoutingConfig::from_file(file.upstreams, file.routes, file.routing, &catalog)?;
        let serve = match args.serve.clone().or(file.serve) {
            Some(names) => resolve_ids(&catalog, &names, "serve")?,
            None => catalog.entries().iter().map(|e| e.id.clone()).collect(),
        };
        let preload = match args.preload.clone().or(file.cache.preload) {
            Some(names) => resolve_ids(&catalog, &names, "preload")?,
            None => serve.clone(),
        };
        for id in &preload {
            anyhow::ensure!(
                serve.contains(id),
                "`preload` names {id:?}, which is not served"
            );
        }
        let keep_alive = match (&args.keep_alive, &file.cache.keep_alive) {
            (Some(text), _) => Some(serde_json::Value::String(text.clone())),
            (None, v) => v.clone(),
        };
        let default_keep_alive = match keep_alive {
            Some(v) => nfai_cache::KeepAlive::parse_json(&v).map_err(|m| anyhow::anyhow!(m))?,
            None => defaults::KEEP_ALIVE,
        };
        let share = file
            .cache
            .ram_budget_share
            .unwrap_or(defaults::RAM_BUDGET_SHARE);
        anyhow::ensure!(
            share > 0.0 && share <= 1.0,
            "cache.ram_budget_share must be in (0, 1]"
        );
        let ram_budget = layer(args.ram_budget_bytes, file.cache.ram_budget_bytes, || {
            nfai_cache::default_cpu_budget(share)
        });
        let vram = crate::budgets::VramSettings {
            budget_bytes: file.cache.vram_budget_bytes,
            margin_bytes: file.cache.vram_margin_bytes,
        };
        let max_loaded_per_device = layer(None, file.cache.max_loaded_models, || {
            defaults::MAX_LOADED_MODELS
        });
        anyhow::ensure!(
            max_loaded_per_device >= 1,
            "cache.max_loaded_models must be at least 1"
        );
        let cache = nfai_cache::CacheConfig {
            budgets: crate::budgets::device_budgets(&catalog, &serve, ram_budget, vram)?,
            max_loaded_per_device,
            default_keep_alive,
            max_waiters: layer(None, file.cache.max_waiters, || defaults::MAX_WAITERS),
        };
        if file.cache.admin_token_file.is_some() {
            warnings.push(
                "`[cache] admin_token_file` is deprecated; use `[admin] token_file`".to_string(),
            );
        }
        let token_file = match (file.admin.token_file, file.cache.admin_token_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "both `[admin] token_file` and the deprecated `[cache] admin_token_file` are set; keep `[admin] token_file`"
            ),
            (new, old) => new.or(old),
        };
        let admin_token = match secret_or_file(
            args.admin_token.as_ref(),
            args.admin_token_file.as_deref(),
            "admin token",
        )? {
            Some(t) => Some(t),
            None => token_file
                .as_deref()
                .map(|p| read_secret(p, "admin token"))
                .transpose()?,
        };
        let engine = EngineSettings {
            queue_capacity: layer(args.queue_capacity, file.engine.queue_capacity, || {
                defaults::QUEUE_CAPACITY
            }),
            max_queue_wait_ms: layer(
                args.max_queue_wait_ms,
                file.engine.max_queue_wait_ms,
                || defaults::MAX_QUEUE_WAIT_MS,
            ),
            prefill_chunk: layer(None, file.engine.prefill_chunk, || defaults::PREFILL_CHUNK),
            prefix_cache_bytes: layer(None, file.engine.prefix_cache_bytes, || {
                defaults::PREFIX_CACHE_BYTES
            }),
            embed_batch_tokens: layer(None, file.engine.embed_batch_tokens, || {
                defaults::EMBED_BATCH_TOKENS
            }),
            threads: layer(args.threads, file.engine.threads, defaults::threads),
        };
        anyhow::ensure!(engine.threads >= 1, "threads must be at least 1");
        anyhow::ensure!(
            engine.queue_capacity >= 1,
            "queue_capacity must be at least 1"
        );
        anyhow::ensure!(
            engine.prefill_chunk >= 1,
            "engine.prefill_chunk must be at least 1"
        );
        anyhow::ensure!(
            engine.embed_batch_tokens >= 512,
            "engine.embed_batch_tokens must be at least 512"
        );
        let max_body_bytes = layer(args.max_body_bytes, file.server.max_body_bytes, || {
            defaults::MAX_BODY_BYTES
        });
        anyhow::ensure!(
            max_body_bytes >= 1024,
            "max_body_bytes must be at least 1024"
        );
        let reserved = ReservedConfig::layer(
            args,
            ReservedFiles {
                data: file.data,
                database: file.database,
                redis: file.redis,
                auth: file.auth,
                logging: file.logging,
                retrieval: file.retrieval,
                files: file.files,
                responses: file.responses,
            },
        )?;
        for w in &warnings {
            tracing::warn!("config: {w}");
        }
        Ok(Self {
            host: layer(args.host, file.server.host, || defaults::HOST),
            port: layer(args.port, file.server.port, || defaults::PORT),
            max_body_bytes,
            tls: match (
                args.tls_cert.clone().or(file.server.tls_cert),
                args.tls_key.clone().or(file.server.tls_key),
            ) {
                (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key }),
                (None, None) => None,
                _ => anyhow::bail!("server.tls_cert and server.tls_key must be set together"),
            },
            model_dir: layer(
                args.common.model_dir.clone(),
                file.model_dir,
                nfai_models::default_model_dir,
            ),
            fetch_missing: !args.no_fetch && file.fetch_missing.unwrap_or(true),
            serve,
            engine,
            catalog,
            routing,
            preload,
            cache,
            admin_token,
            reserved,
            warnings,
        })
    }

    /// The catalog and model dir for `nfai models …` commands.
    pub fn catalog_and_dir(common: &CommonArgs) -> anyhow::Result<(Catalog, PathBuf)> {
        let file = read_file(common.config.as_deref())?;
        let catalog = Catalog::with_overrides(file.models)?;
        let dir = layer(
            common.model_dir.clone(),
            file.model_dir,
            nfai_models::default_model_dir,
        );
        Ok((catalog, dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_apply_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nfai.toml");
        std::fs::write(
            &path,
            "serve = [\"gemma3\"]\n[server]\nport = 9000\nhost = \"0.0.0.0\"\n[engine]\nqueue_capacity = 8\nmax_queue_wait_ms = 250\n",
        )
        .unwrap();
        let mut args = ServeArgs::default();
        args.common.config = Some(path.clone());
        let c = Config::from_serve_args(&args).unwrap();
        assert_eq!((c.port, c.engine.queue_capacity), (9000, 8));
        assert_eq!(c.engine.max_queue_wait_ms, 250);
        assert_eq!(c.serve, vec!["gemma-3-270m".to_string()]);
        args.port = Some(1234);
        assert_eq!(Config::from_serve_args(&args).unwrap().port, 1234);
    }

    #[test]
    fn unknown_keys_and_models_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nfai.toml");
        std::fs::write(&path, "[server]\nprot = 1\n").unwrap();
        let mut args = ServeArgs::default();
        args.common.config = Some(path.clone());
        assert!(Config::from_serve_args(&args).is_err());
        let args = ServeArgs {
            serve: Some(vec!["nope".into()]),
            ..Default::default()
        };
        let err = Config::from_serve_args(&args).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    fn args_with(toml: &str) -> (tempfile::TempDir, ServeArgs) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nfai.toml");
        std::fs::write(&path, toml).unwrap();
        let mut args = ServeArgs::default();
        args.common.config = Some(path);
        (dir, args)
    }

    #[test]
    fn defaults_keep_the_whole_catalog_resident() {
        let c = Config::from_serve_args(&ServeArgs::default()).unwrap();
        assert_eq!(c.cache.max_loaded_per_device, defaults::MAX_LOADED_MODELS);
        assert!(c.catalog.entries().len() <= c.cache.max_loaded_per_device);
        assert_eq!((c.port, c.engine.queue_capacity), (8080, 64));
        assert_eq!(c.engine.max_queue_wait_ms, 0);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.reserved.data_dir.ends_with("nfai"));
        assert_eq!(c.reserved.files_max_bytes, defaults::FILES_MAX_BYTES);
        assert_eq!(
            c.reserved.responses_max_stored,
            defaults::RESPONSES_MAX_STORED
        );
    }

    #[test]
    fn the_admin_token_file_moved_to_admin_and_the_old_key_warns() {
        let (dir, _) = args_with("");
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let path = token.display();
        let (_d, args) = args_with(&format!("[admin]\ntoken_file = \"{path}\"\n"));
        let c = Config::from_serve_args(&args).unwrap();
        assert_eq!(c.admin_token.unwrap().expose(), "s3cret");
        assert!(c.warnings.is_empty());
        let (_d, args) = args_with(&format!("[cache]\nadmin_token_file = \"{path}\"\n"));
        let c = Config::from_serve_args(&args).unwrap();
        assert_eq!(c.admin_token.unwrap().expose(), "s3cret");
        assert!(c.warnings[0].contains("deprecated"), "{:?}", c.warnings);
        let (_d, args) = args_with(&format!(
            "[admin]\ntoken_file = \"{path}\"\n[cache]\nadmin_token_file = \"{path}\"\n"
        ));
        assert!(Config::from_serve_args(&args).is_err());
    }

    #[test]
    fn reserved_sections_parse_validate_and_warn() {
        let (dir, _) = args_with("");
        let url_file = dir.path().join("db-url");
        std::fs::write(&url_file, "postgres://crm@db/crm\n").unwrap();
        let (_d, args) = args_with(&format!(
            "[data]\ndir = \"/srv/nfai\"\n\
             [database]\nurl_file = \"{}\"\n\
             [redis]\nurl = \"redis://cache:6379\"\n\
             [auth]\nallow_unauthenticated = true\n\
             [logging]\nformat = \"json\"\nlog_bodies = false\n\
             [retrieval]\nqdrant_url = \"http://qdrant:6334\"\ningest_concurrency = 4\n\
             ingest_max_bytes = 8388608\n\
             [[retrieval.sources]]\nname = \"tickets\"\nvector_store = \"crm\"\n\
             sql = \"SELECT id, subject, updated_at FROM tickets\"\ntext_columns = [\"subject\"]\n\
             [files]\nmax_bytes = 1048576\n\
             [responses]\nmax_stored = 50\nretention_secs = 3600\n",
            url_file.display()
        ));
        let c = Config::from_serve_args(&args).unwrap();
        let r = &c.reserved;
        assert_eq!(r.data_dir, PathBuf::from("/srv/nfai"));
        assert_eq!(
            r.database_url.as_ref().map(Secret::expose),
            Some("postgres://crm@db/crm")
        );
        assert_eq!(r.log_format, reserved::LogFormat::Json);
        assert_eq!((r.files_max_bytes, r.retrieval_sources), (1_048_576, 1));
        assert_eq!((r.ingest_concurrency, r.ingest_max_bytes), (4, 8 << 20));
        assert_eq!(
            (r.responses_max_stored, r.responses_retention_secs),
            (50, Some(3600))
        );
        assert!(
            !format!("{c:?}").contains("crm@db"),
            "secrets stay out of Debug"
        );
        assert!(
            !c.warnings
                .iter()
                .any(|w| w.contains("retrieval.qdrant_url")),
            "the Qdrant URL is used: {:?}",
            c.warnings
        );
        assert!(
            !c.warnings.iter().any(|w| w.contains("database.url")),
            "database.url is used by the records and sources: {:?}",
            c.warnings
        );
        for bad in [
            "[logging]\nformat = \"xml\"\n",
            "[files]\nmax_bytes = 0\n",
            "[responses]\nmax_stored = 0\n",
            "[responses]\nretention_secs = 0\n",
            "[responses]\nkeep = 1\n",
            "[redis]\nurl = \"http://cache\"\n",
            "[database]\nurl_file = \"/nonexistent/url\"\n",
            "[retrieval]\nqdrant = \"x\"\n",
            "[retrieval]\ningest_concurrency = 0\n",
            "[retrieval]\ningest_concurrency = 257\n",
            "[retrieval]\ningest_max_bytes = 1048575\n",
        ] {
            let (_d, args) = args_with(bad);
            assert!(Config::from_serve_args(&args).is_err(), "{bad}");
        }
        let (_d, mut args) = args_with("[data]\ndir = \"/from/file\"\n");
        args.data_dir = Some(PathBuf::from("/from/flag"));
        let c = Config::from_serve_args(&args).unwrap();
        assert_eq!(c.reserved.data_dir, PathBuf::from("/from/flag"));
    }
}
