//! The route table: every upstream (its pooled client and nodes) and every route name (ids and
//! aliases) with the backend that serves it. Without `[[routes]]` the table is empty and every
//! catalog model runs natively, as before.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::config::{Protocol, RouteConfig, RoutingConfig, TargetSpec, UpstreamConfig};
use super::node::{Node, NodePool};
use super::routed::{Policy, RoutedBackend, Target, TargetKind};
use crate::backend::native::NativeBackend;
use crate::openai::models::ModelObject;
use crate::state::AppState;
use nfai_cache::ModelState;

/// One upstream: its settings, pooled HTTP client and nodes.
#[derive(Debug)]
pub struct Upstream {
    pub cfg: UpstreamConfig,
    pub client: super::http::HttpClient,
    pub pool: NodePool,
    /// The protocols routes use on it (what the residency poll asks).
    pub protocols: HashSet<Protocol>,
}

impl Upstream {
    pub fn new(cfg: UpstreamConfig, protocols: HashSet<Protocol>) -> anyhow::Result<Self> {
        let client = super::http::build_client(&cfg)?;
        let nodes = cfg
            .nodes
            .iter()
            .map(|(u, m)| Node::new(u.clone(), *m).map(Arc::new))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            cfg,
            client,
            pool: NodePool::new(nodes),
            protocols,
        })
    }

    pub fn call<'a>(&'a self, node: &'a Node) -> super::http::Call<'a> {
        super::http::Call {
            client: &self.client,
            cfg: &self.cfg,
            base: &node.url,
            uri: &node.uri,
            until: tokio::time::Instant::now() + self.cfg.total_timeout,
        }
    }
}

/// A routed name.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub config: RouteConfig,
    pub backend: Arc<RoutedBackend>,
}

impl RouteEntry {
    /// Whether some target has the model loaded (`native_ready` holds the ids of ready native
    /// models; upstream nodes report theirs to the residency poll).
    pub fn resident(&self, native_ready: &HashSet<String>) -> bool {
        self.backend
            .targets
            .iter()
            .any(|t| match (&t.kind, &t.model) {
                (TargetKind::Native(n), Some(m)) => n
                    .registry()
                    .catalog()
                    .resolve(m)
                    .is_some_and(|e| native_ready.contains(&e.id)),
                (TargetKind::Upstream(u, _), Some(m)) => {
                    u.pool.nodes.iter().any(|n| n.has_resident(m))
                }
                _ => false,
            })
    }

    /// The route as `/v1/models` lists it.
    pub fn model_object(&self, created: u64, native_ready: &HashSet<String>) -> ModelObject {
        ModelObject {
            id: self.config.model.clone(),
            object: "model",
            created,
            owned_by: "nfai",
            kind: self.config.kind,
            state: if self.resident(native_ready) {
                "ready"
            } else {
                "unloaded"
            },
            aliases: self.config.aliases.clone(),
            context_length: None,
        }
    }
}

/// Ids of the native models that are loaded and ready.
pub async fn native_ready(state: &AppState) -> HashSet<String> {
    state
        .registry()
        .cache()
        .status()
        .await
        .map(|all| {
            all.into_iter()
                .filter(|s| s.state == ModelState::Ready)
                .map(|s| s.id)
                .collect()
        })
        .unwrap_or_default()
}

/// `/v1/models` entries of the routed names.
pub async fn routed_model_objects(state: &AppState) -> Vec<ModelObject> {
    let ready = native_ready(state).await;
    state
        .routes()
        .routes
        .iter()
        .map(|r| r.model_object(state.started_unix(), &ready))
        .collect()
}

/// Route names to backends.
#[derive(Debug, Default)]
pub struct RouteTable {
    pub upstreams: Vec<Arc<Upstream>>,
    /// By route name and alias.
    names: HashMap<String, usize>,
    pub routes: Vec<RouteEntry>,
}

impl RouteTable {
    pub fn build(cfg: &RoutingConfig, native: &Arc<NativeBackend>) -> anyhow::Result<Self> {
        let mut protocols: HashMap<&str, HashSet<Protocol>> = HashMap::new();
        for r in &cfg.routes {
            for t in &r.targets {
                if let TargetSpec::Upstream {
                    protocol, upstream, ..
                } = t
                {
                    protocols
                        .entry(upstream.as_str())
                        .or_default()
                        .insert(*protocol);
                }
            }
        }
        let upstreams = cfg
            .upstreams
            .iter()
            .map(|u| {
                let p = protocols.get(u.name.as_str()).cloned().unwrap_or_default();
                Upstream::new(u.clone(), p).map(Arc::new)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let by_name: HashMap<&str, &Arc<Upstream>> =
            upstreams.iter().map(|u| (u.cfg.name.as_str(), u)).collect();
        let policy = Arc::new(Policy {
            retries: cfg.retries,
            request_timeout: cfg.request_timeout,
            cooldown: cfg.cooldown,
        });
        let mut names = HashMap::new();
        let mut routes = Vec::new();
        for r in &cfg.routes {
            let targets = r
                .targets
                .iter()
                .map(|t| match t {
                    TargetSpec::Native { id } => Ok(Target {
                        kind: TargetKind::Native(native.clone()),
                        model: Some(id.clone()),
                        label: format!("native:{id}"),
                    }),
                    TargetSpec::Upstream {
                        protocol,
                        upstream,
                        model,
                    } => {
                        let up = by_name
                            .get(upstream.as_str())
                            .ok_or_else(|| anyhow::anyhow!("unknown upstream {upstream:?}"))?;
                        Ok(Target {
                            kind: TargetKind::Upstream((*up).clone(), *protocol),
                            model: Some(model.clone()),
                            label: format!("{}:{upstream}/{model}", protocol_name(*protocol)),
                        })
                    }
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let backend = Arc::new(RoutedBackend::new(r.model.clone(), targets, policy.clone()));
            for n in std::iter::once(&r.model).chain(&r.aliases) {
                names.insert(n.clone(), routes.len());
            }
            routes.push(RouteEntry {
                config: r.clone(),
                backend,
            });
        }
        Ok(Self {
            upstreams,
            names,
            routes,
        })
    }

    /// The route called `name` (an id or alias).
    pub fn get(&self, name: &str) -> Option<&RouteEntry> {
        self.names.get(name).and_then(|&i| self.routes.get(i))
    }

    /// Starts the health and residency poll of every upstream.
    pub fn start_polling(&self) {
        for up in &self.upstreams {
            super::health::spawn(Arc::downgrade(up));
        }
    }
}

pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Ollama => "ollama",
        Protocol::OpenAi => "openai",
    }
}
