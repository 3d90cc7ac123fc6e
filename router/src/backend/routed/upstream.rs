//! [`Upstream`]: one `[[upstreams]]` entry at run time: its settings, its nodes (the pool the
//! routes pick from) and, per node, the clients of the protocols routes use on it.

use std::collections::HashSet;
use std::sync::Arc;

use super::node::{Node, NodePool};
use crate::backend::Backend;
use crate::backend::upstream::http::{NodeHttp, build_client};
use crate::backend::upstream::ollama::OllamaClient;
use crate::backend::upstream::openai::OpenAiClient;
use crate::config::routing::{Protocol, UpstreamConfig};

/// One upstream: its settings, nodes and clients.
#[derive(Debug)]
pub struct Upstream {
    pub cfg: Arc<UpstreamConfig>,
    pub pool: NodePool,
    /// The protocols routes use on it (what the residency poll asks).
    pub protocols: HashSet<Protocol>,
    /// One client per node, in the pool's order, for each protocol in `protocols`.
    pub ollama: Vec<Arc<OllamaClient>>,
    pub openai: Vec<Arc<OpenAiClient>>,
}

impl Upstream {
    pub fn new(cfg: UpstreamConfig, protocols: HashSet<Protocol>) -> anyhow::Result<Self> {
        let cfg = Arc::new(cfg);
        let client = build_client(&cfg)?;
        let mut nodes = Vec::with_capacity(cfg.nodes.len());
        let mut ollama = Vec::new();
        let mut openai = Vec::new();
        for (url, max) in &cfg.nodes {
            nodes.push(Arc::new(Node::new(url.clone(), *max)?));
            let http = Arc::new(NodeHttp::new(client.clone(), cfg.clone(), url.clone())?);
            if protocols.contains(&Protocol::Ollama) {
                ollama.push(Arc::new(OllamaClient::new(http.clone())));
            }
            if protocols.contains(&Protocol::OpenAi) {
                openai.push(Arc::new(OpenAiClient::new(http)));
            }
        }
        Ok(Self {
            pool: NodePool::new(nodes, cfg.balance),
            cfg,
            protocols,
            ollama,
            openai,
        })
    }

    /// The backends of `protocol`, one per node.
    pub fn backends(&self, protocol: Protocol) -> Vec<Arc<dyn Backend>> {
        match protocol {
            Protocol::Ollama => self
                .ollama
                .iter()
                .map(|c| c.clone() as Arc<dyn Backend>)
                .collect(),
            Protocol::OpenAi => self
                .openai
                .iter()
                .map(|c| c.clone() as Arc<dyn Backend>)
                .collect(),
        }
    }
}
