//! The TOML file. Every key is optional and unknown keys are errors; sections reserved for what
//! comes next (`[data]`, `[database]`, `[redis]`, `[auth]`, `[logging]`, `[retrieval]`,
//! `[files]`, `[responses]`) are parsed and validated now, in `super::reserved`.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::reserved::{
    AuthFile, DataFile, DatabaseFile, FilesFile, LoggingFile, RedisFile, ResponsesFile,
    RetrievalFile,
};
use super::routing::{RouteFile, RoutingFile, UpstreamFile};
use crate::catalog::ModelEntry;

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
    pub upstreams: Vec<UpstreamFile>,
    /// Model names and where their requests go, in order.
    #[serde(default)]
    pub routes: Vec<RouteFile>,
    #[serde(default)]
    pub routing: RoutingFile,
    #[serde(default)]
    pub admin: AdminFile,
    #[serde(default)]
    pub data: DataFile,
    #[serde(default)]
    pub database: DatabaseFile,
    #[serde(default)]
    pub redis: RedisFile,
    #[serde(default)]
    pub auth: AuthFile,
    #[serde(default)]
    pub logging: LoggingFile,
    #[serde(default)]
    pub retrieval: RetrievalFile,
    #[serde(default)]
    pub files: FilesFile,
    #[serde(default)]
    pub responses: ResponsesFile,
}

/// `[admin]`: the admin API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// File holding the admin token (a mounted secret); `NFAI_ADMIN_TOKEN_FILE`.
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
    pub max_body_bytes: Option<usize>,
    /// PEM certificate chain: serve HTTPS; `NFAI_TLS_CERT`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key; `NFAI_TLS_KEY`.
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineFile {
    pub queue_capacity: Option<usize>,
    pub max_queue_wait_ms: Option<u64>,
    pub threads: Option<usize>,
    pub prefill_chunk: Option<usize>,
    pub prefix_cache_bytes: Option<u64>,
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
    /// Deprecated: `[admin] token_file`. Still read, with a warning at start.
    pub admin_token_file: Option<PathBuf>,
}
