//! The route table's configuration: `[[upstreams]]`, `[[routes]]` and `[routing]` in the TOML
//! file, and their validation at start (unknown upstream names, bad URLs, malformed targets).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde::Deserialize;

use super::defaults as d;
use crate::catalog::Catalog;

/// One `[[upstreams]]` entry: a group of nodes serving the same models.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    pub name: String,
    /// Base URLs (`http://gpu-box:11434`), or tables `{ url, max_concurrency }`.
    pub nodes: Vec<NodeFile>,
    /// Bearer token sent to every node.
    pub api_key: Option<String>,
    /// File holding the bearer token (trailing whitespace ignored).
    pub api_key_file: Option<PathBuf>,
    /// Requests in flight per node [default: 64].
    pub max_concurrency: Option<usize>,
    pub connect_timeout_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
    pub total_timeout_ms: Option<u64>,
    /// Active health check: GET this path on every node each interval (absent: passive only).
    pub health_path: Option<String>,
    pub health_interval_ms: Option<u64>,
    /// Ollama `options.num_ctx` sent with every request to this upstream.
    pub num_ctx: Option<usize>,
    /// Ollama `keep_alive` sent when the client gave none.
    pub keep_alive: Option<String>,
    /// How a node is chosen: `affinity` or `round_robin` [default: affinity].
    pub balance: Option<Balance>,
}

/// How the nodes of an upstream share its requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Nodes with the model resident first, then the node the model last went to, then a node
    /// no other model went to last, then the less busy of two random nodes.
    #[default]
    Affinity,
    /// Every node in turn, whatever it holds: the baseline affinity is measured against.
    RoundRobin,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NodeFile {
    Url(String),
    Table {
        url: String,
        max_concurrency: Option<usize>,
    },
}

/// One `[[routes]]` entry: a name clients use and where its requests go, in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub model: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `native:<id>`, `ollama:<upstream>/<model>` or `openai:<upstream>/<model>`.
    pub targets: Vec<String>,
    /// `chat` or `embedding` (for listings) [default: chat, or the native target's kind].
    pub kind: Option<String>,
}

/// `[routing]`: limits shared by every route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingFile {
    /// Further attempts after the first failed one [default: 2].
    pub retries: Option<usize>,
    /// Deadline of a request over all its attempts, unless `x-request-timeout` says [default: 600].
    pub request_timeout_secs: Option<f64>,
    /// Failures within `failure_window_ms` that put a node in cooldown [default: 3].
    pub failure_threshold: Option<usize>,
    pub failure_window_ms: Option<u64>,
    /// How long a failing node is skipped [default: 5000].
    pub cooldown_ms: Option<u64>,
}

/// The protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Ollama,
    OpenAi,
}

/// A parsed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Native {
        id: String,
    },
    Upstream {
        protocol: Protocol,
        upstream: String,
        model: String,
    },
}

impl TargetSpec {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let (scheme, rest) = s.split_once(':').with_context(|| {
            format!("target {s:?} must look like native:<id>, ollama:<upstream>/<model> or openai:<upstream>/<model>")
        })?;
        let protocol = match scheme {
            "native" => {
                ensure!(!rest.is_empty(), "target {s:?} names no model");
                return Ok(Self::Native {
                    id: rest.to_string(),
                });
            }
            "ollama" => Protocol::Ollama,
            "openai" => Protocol::OpenAi,
            other => bail!("target {s:?}: unknown kind {other:?} (native, ollama or openai)"),
        };
        let (upstream, model) = rest
            .split_once('/')
            .filter(|(u, m)| !u.is_empty() && !m.is_empty())
            .with_context(|| format!("target {s:?} must be {scheme}:<upstream>/<model>"))?;
        Ok(Self::Upstream {
            protocol,
            upstream: upstream.to_string(),
            model: model.to_string(),
        })
    }
}

/// A validated upstream.
#[derive(Clone)]
pub struct UpstreamConfig {
    pub name: String,
    /// `(base URL without trailing slash, max concurrency)`.
    pub nodes: Vec<(String, usize)>,
    pub api_key: Option<String>,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub total_timeout: Duration,
    pub health_path: Option<String>,
    pub health_interval: Duration,
    pub num_ctx: Option<usize>,
    pub keep_alive: Option<String>,
    pub balance: Balance,
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("name", &self.name)
            .field("nodes", &self.nodes)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("health_path", &self.health_path)
            .field("balance", &self.balance)
            .finish_non_exhaustive()
    }
}

/// A validated route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub model: String,
    pub aliases: Vec<String>,
    pub targets: Vec<TargetSpec>,
    /// `chat` or `embedding`.
    pub kind: &'static str,
}

/// Cooldown policy of every node.
#[derive(Debug, Clone, Copy)]
pub struct Cooldown {
    pub threshold: usize,
    pub window: Duration,
    pub cooldown: Duration,
}

impl Default for Cooldown {
    fn default() -> Self {
        Self {
            threshold: d::ROUTING_FAILURE_THRESHOLD,
            window: Duration::from_millis(d::ROUTING_FAILURE_WINDOW_MS),
            cooldown: Duration::from_millis(d::ROUTING_COOLDOWN_MS),
        }
    }
}

/// The validated route table settings.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    pub retries: usize,
    pub request_timeout: Duration,
    pub cooldown: Cooldown,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            routes: Vec::new(),
            retries: d::ROUTING_RETRIES,
            request_timeout: Duration::from_secs_f64(d::ROUTING_REQUEST_TIMEOUT_SECS),
            cooldown: Cooldown::default(),
        }
    }
}

fn ms(v: Option<u64>, default: u64, what: &str) -> anyhow::Result<Duration> {
    let v = v.unwrap_or(default);
    ensure!(v >= 1, "{what} must be at least 1 ms");
    Ok(Duration::from_millis(v))
}

fn base_url(url: &str, upstream: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url)
        .with_context(|| format!("upstream {upstream:?}: node URL {url:?} is not a valid URL"))?;
    ensure!(
        matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some(),
        "upstream {upstream:?}: node URL {url:?} must be http(s)://host[:port]"
    );
    Ok(url.trim_end_matches('/').to_string())
}

fn upstream(f: UpstreamFile) -> anyhow::Result<UpstreamConfig> {
    let name = f.name;
    ensure!(
        !name.is_empty() && !name.contains('/'),
        "upstream name {name:?} must be non-empty without '/'"
    );
    ensure!(!f.nodes.is_empty(), "upstream {name:?} has no nodes");
    let default_max = f.max_concurrency.unwrap_or(d::UPSTREAM_MAX_CONCURRENCY);
    let mut nodes = Vec::new();
    for n in f.nodes {
        let (url, max) = match n {
            NodeFile::Url(u) => (u, default_max),
            NodeFile::Table {
                url,
                max_concurrency,
            } => (url, max_concurrency.unwrap_or(default_max)),
        };
        ensure!(
            max >= 1,
            "upstream {name:?}: max_concurrency must be at least 1"
        );
        nodes.push((base_url(&url, &name)?, max));
    }
    let api_key = match (f.api_key, f.api_key_file) {
        (Some(_), Some(_)) => bail!("upstream {name:?}: give api_key or api_key_file, not both"),
        (Some(k), None) => Some(k),
        (None, Some(path)) => Some(
            std::fs::read_to_string(&path)
                .with_context(|| {
                    format!("upstream {name:?}: reading api_key_file {}", path.display())
                })?
                .trim_end()
                .to_string(),
        ),
        (None, None) => None,
    };
    if let Some(p) = &f.health_path {
        ensure!(
            p.starts_with('/'),
            "upstream {name:?}: health_path {p:?} must start with '/'"
        );
    }
    Ok(UpstreamConfig {
        connect_timeout: ms(
            f.connect_timeout_ms,
            d::UPSTREAM_CONNECT_TIMEOUT_MS,
            "connect_timeout_ms",
        )?,
        first_byte_timeout: ms(
            f.first_byte_timeout_ms,
            d::UPSTREAM_FIRST_BYTE_TIMEOUT_MS,
            "first_byte_timeout_ms",
        )?,
        total_timeout: ms(
            f.total_timeout_ms,
            d::UPSTREAM_TOTAL_TIMEOUT_MS,
            "total_timeout_ms",
        )?,
        health_interval: ms(
            f.health_interval_ms,
            d::UPSTREAM_HEALTH_INTERVAL_MS,
            "health_interval_ms",
        )?,
        health_path: f.health_path,
        num_ctx: f.num_ctx,
        keep_alive: f.keep_alive,
        balance: f.balance.unwrap_or_default(),
        name,
        nodes,
        api_key,
    })
}

impl RoutingConfig {
    /// Validates the file's sections against each other and the catalog.
    pub fn from_file(
        upstreams: Vec<UpstreamFile>,
        routes: Vec<RouteFile>,
        routing: RoutingFile,
        catalog: &Catalog,
    ) -> anyhow::Result<Self> {
        let upstreams = upstreams
            .into_iter()
            .map(upstream)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut seen = HashSet::new();
        for u in &upstreams {
            ensure!(
                seen.insert(u.name.clone()),
                "upstream {:?} is defined twice",
                u.name
            );
        }
        let mut names: HashMap<String, String> = HashMap::new();
        let mut out = Vec::new();
        for r in routes {
            ensure!(!r.targets.is_empty(), "route {:?} has no targets", r.model);
            let targets = r
                .targets
                .iter()
                .map(|t| TargetSpec::parse(t).with_context(|| format!("route {:?}", r.model)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut kind = None;
            for t in &targets {
                match t {
                    TargetSpec::Native { id } => {
                        let e = catalog.resolve(id).with_context(|| {
                            format!(
                                "route {:?}: target native:{id} is not in the catalog",
                                r.model
                            )
                        })?;
                        kind.get_or_insert(match e.kind {
                            crate::catalog::ModelKind::Chat => "chat",
                            crate::catalog::ModelKind::Embedding => "embedding",
                        });
                    }
                    TargetSpec::Upstream { upstream, .. } => ensure!(
                        seen.contains(upstream),
                        "route {:?}: target names upstream {upstream:?}, which is not defined in [[upstreams]]",
                        r.model
                    ),
                }
            }
            let kind = match r.kind.as_deref() {
                Some("chat") => "chat",
                Some("embedding") => "embedding",
                Some(other) => bail!(
                    "route {:?}: kind {other:?} must be chat or embedding",
                    r.model
                ),
                None => kind.unwrap_or("chat"),
            };
            for n in std::iter::once(&r.model).chain(&r.aliases) {
                if let Some(prev) = names.insert(n.clone(), r.model.clone()) {
                    bail!(
                        "route name {n:?} is used by routes {prev:?} and {:?}",
                        r.model
                    );
                }
            }
            out.push(RouteConfig {
                model: r.model,
                aliases: r.aliases,
                targets,
                kind,
            });
        }
        let timeout = routing
            .request_timeout_secs
            .unwrap_or(d::ROUTING_REQUEST_TIMEOUT_SECS);
        ensure!(
            timeout > 0.0 && timeout.is_finite(),
            "routing.request_timeout_secs must be positive"
        );
        let d = Cooldown::default();
        let cooldown = Cooldown {
            threshold: routing.failure_threshold.unwrap_or(d.threshold).max(1),
            window: routing
                .failure_window_ms
                .map(Duration::from_millis)
                .unwrap_or(d.window),
            cooldown: routing
                .cooldown_ms
                .map(Duration::from_millis)
                .unwrap_or(d.cooldown),
        };
        Ok(Self {
            upstreams,
            routes: out,
            retries: routing.retries.unwrap_or(d::ROUTING_RETRIES),
            request_timeout: Duration::from_secs_f64(timeout),
            cooldown,
        })
    }
}
