//! Every built-in default of the configuration, declared once. The `--help` text, the README's
//! configuration table and the validation refer to these.

use std::net::{IpAddr, Ipv4Addr};

use nfai_cache::KeepAlive;

/// `server.host`.
pub const HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// `server.port`.
pub const PORT: u16 = 8080;
/// `server.max_body_bytes`: 2 MiB.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// `engine.queue_capacity`: requests waiting per model before 429.
pub const QUEUE_CAPACITY: usize = 64;
/// `engine.max_queue_wait_ms`: 0, admission by queue length alone.
pub const MAX_QUEUE_WAIT_MS: u64 = 0;
/// `engine.prefill_chunk`: prompt tokens per scheduler step.
pub const PREFILL_CHUNK: usize = 512;
/// `engine.prefix_cache_bytes`: KV cache each chat model keeps for shared prompt prefixes
/// (64 MiB: about 2,800 positions of SmolLM2-135M, 2,000 of Gemma 3 270M).
pub const PREFIX_CACHE_BYTES: u64 = 64 << 20;
/// `engine.embed_batch_tokens`: padded tokens per embedding batch.
pub const EMBED_BATCH_TOKENS: usize = 16_384;
/// `cache.ram_budget_share`: of the memory available at start.
pub const RAM_BUDGET_SHARE: f64 = 0.8;
/// `cache.max_loaded_models`, per device: room for every model of the built-in catalog (four)
/// with two to spare, so the default `serve` keeps them all resident; the byte budget still
/// applies.
pub const MAX_LOADED_MODELS: usize = 6;
/// `cache.max_waiters`: requests waiting for one model's load.
pub const MAX_WAITERS: usize = 256;
/// `cache.keep_alive`: how long an idle model stays loaded (5 minutes).
pub const KEEP_ALIVE: KeepAlive = KeepAlive::DEFAULT;
/// `database.max_connections`.
pub const DATABASE_MAX_CONNECTIONS: usize = 8;
/// `auth.allow_unauthenticated`: a server on a public address refuses to start without keys.
pub const ALLOW_UNAUTHENTICATED: bool = false;
/// `redis.key_prefix`.
pub const REDIS_KEY_PREFIX: &str = "nfai:";
/// `logging.format` when stdout is a terminal; otherwise JSON lines are the default.
pub const LOG_FORMAT: &str = "text";
/// `responses.max_stored`: stored responses kept before the oldest are removed.
pub const RESPONSES_MAX_STORED: usize = 10_000;
/// `retrieval.ingest_concurrency`: files ingested at once. Their embedding requests meet in
/// the embedding engine's queue and run as one batch, so short files (a source's rows) are
/// embedded many to a forward pass instead of one each; the byte budget below bounds what
/// large files hold.
pub const INGEST_CONCURRENCY: usize = 64;
/// `retrieval.ingest_max_bytes`: file bytes ingested at once, 256 MiB. A file holds a few
/// times its size while it is ingested (its bytes, text, token offsets and chunks).
pub const INGEST_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// `files.max_bytes`: 512 MiB, OpenAI's limit per file.
pub const FILES_MAX_BYTES: u64 = 512 * 1024 * 1024;

/// `engine.threads`: the CPU cores available.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// `routing.retries`: further attempts after the first failed one.
pub const ROUTING_RETRIES: usize = 2;
/// `routing.request_timeout_secs`: a routed request's deadline over all its attempts.
pub const ROUTING_REQUEST_TIMEOUT_SECS: f64 = 600.0;
/// `routing.failure_threshold`: failures within the window that cool a node down.
pub const ROUTING_FAILURE_THRESHOLD: usize = 3;
/// `routing.failure_window_ms`.
pub const ROUTING_FAILURE_WINDOW_MS: u64 = 10_000;
/// `routing.cooldown_ms`: how long a failing node is skipped.
pub const ROUTING_COOLDOWN_MS: u64 = 5_000;
/// `upstreams.max_concurrency`: requests in flight per node.
pub const UPSTREAM_MAX_CONCURRENCY: usize = 64;
/// `upstreams.connect_timeout_ms`.
pub const UPSTREAM_CONNECT_TIMEOUT_MS: u64 = 2_000;
/// `upstreams.first_byte_timeout_ms`.
pub const UPSTREAM_FIRST_BYTE_TIMEOUT_MS: u64 = 60_000;
/// `upstreams.total_timeout_ms`.
pub const UPSTREAM_TOTAL_TIMEOUT_MS: u64 = 600_000;
/// `upstreams.health_interval_ms`.
pub const UPSTREAM_HEALTH_INTERVAL_MS: u64 = 5_000;
