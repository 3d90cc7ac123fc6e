//! The route table: every upstream (its pooled client and nodes) and every route name (ids and
//! aliases) with the backend that serves it. Without `[[routes]]` the table is empty and every
//! catalog model runs natively, as before.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::upstream::Upstream;
use super::{Policy, RoutedBackend, Target};
use crate::backend::Backend;
use crate::backend::native::NativeBackend;
use crate::config::routing::{Protocol, RouteConfig, RoutingConfig, TargetSpec};

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
        self.backend.targets.iter().any(|t| match &t.upstream {
            None => native_ready.contains(&t.model),
            Some(u) => u.pool.nodes.iter().any(|n| n.has_resident(&t.model)),
        })
    }
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
                        backends: vec![native.clone() as Arc<dyn Backend>],
                        upstream: None,
                        // The catalog id, so that residency reads the cache's status.
                        model: native
                            .registry()
                            .catalog()
                            .resolve(id)
                            .map_or_else(|| id.clone(), |e| e.id.clone()),
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
                            backends: up.backends(*protocol),
                            upstream: Some((*up).clone()),
                            model: model.clone(),
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
