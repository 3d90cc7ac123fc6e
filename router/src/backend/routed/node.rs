//! Nodes of an upstream and how one is chosen: least outstanding requests with power-of-two
//! random choices, model affinity (nodes with the model resident first, then the node the model
//! was last sent to), per-node concurrency limits, and cooldown after repeated failures.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::time::Instant;

use crate::backend::upstream::http::BaseUri;
use crate::config::routing::Cooldown;

/// One server of an upstream.
#[derive(Debug)]
pub struct Node {
    pub url: String,
    /// `url`, split once for building request URIs.
    pub uri: BaseUri,
    pub max_concurrency: usize,
    outstanding: AtomicUsize,
    healthy: AtomicBool,
    failures: Mutex<VecDeque<Instant>>,
    cooldown_until: Mutex<Option<Instant>>,
    resident: RwLock<HashSet<String>>,
}

/// Model names compare without Ollama's default `:latest` tag.
pub fn normalize(model: &str) -> &str {
    model.strip_suffix(":latest").unwrap_or(model)
}

impl Node {
    pub fn new(url: String, max_concurrency: usize) -> anyhow::Result<Self> {
        Ok(Self {
            uri: BaseUri::parse(&url)?,
            url,
            max_concurrency,
            outstanding: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            failures: Mutex::new(VecDeque::new()),
            cooldown_until: Mutex::new(None),
            resident: RwLock::new(HashSet::new()),
        })
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn set_resident(&self, models: HashSet<String>) {
        if let Ok(mut r) = self.resident.write() {
            *r = models.iter().map(|m| normalize(m).to_string()).collect();
        }
    }

    pub fn has_resident(&self, model: &str) -> bool {
        self.resident
            .read()
            .map(|r| r.contains(normalize(model)))
            .unwrap_or(false)
    }

    pub fn in_cooldown(&self, now: Instant) -> bool {
        self.cooldown_until
            .lock()
            .map(|c| c.is_some_and(|t| t > now))
            .unwrap_or(false)
    }

    /// Counts a failure; the `threshold`-th within `window` starts a cooldown.
    pub fn record_failure(&self, policy: &Cooldown) {
        let now = Instant::now();
        let Ok(mut f) = self.failures.lock() else {
            return;
        };
        while f
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            f.pop_front();
        }
        f.push_back(now);
        if f.len() >= policy.threshold {
            f.clear();
            if let Ok(mut c) = self.cooldown_until.lock() {
                *c = Some(now + policy.cooldown);
            }
            tracing::warn!(node = %self.url, cooldown_ms = policy.cooldown.as_millis() as u64, "node in cooldown");
        }
    }

    pub fn record_success(&self) {
        if let Ok(mut f) = self.failures.lock() {
            f.clear();
        }
    }
}

/// A request counted against a node until dropped.
#[derive(Debug)]
pub struct NodeGuard(pub Arc<Node>);

impl Drop for NodeGuard {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The nodes of one upstream.
#[derive(Debug)]
pub struct NodePool {
    pub nodes: Vec<Arc<Node>>,
    /// The node each model was last sent to, to keep a model's requests together.
    last: Mutex<HashMap<String, usize>>,
}

/// Why no node was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoNode {
    /// Every untried node is at its concurrency limit.
    Busy,
    /// Every untried node is in cooldown, unhealthy, or already tried.
    Unavailable,
}

impl NodePool {
    pub fn new(nodes: Vec<Arc<Node>>) -> Self {
        Self {
            nodes,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Picks a node for `model` among those not in `tried`, and counts the request on it.
    pub fn pick(&self, model: &str, tried: &[usize]) -> Result<(usize, NodeGuard), NoNode> {
        let now = Instant::now();
        let open: Vec<usize> = (0..self.nodes.len())
            .filter(|i| !tried.contains(i))
            .filter(|&i| self.nodes[i].is_healthy() && !self.nodes[i].in_cooldown(now))
            .collect();
        if open.is_empty() {
            return Err(NoNode::Unavailable);
        }
        let free: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| self.nodes[i].outstanding() < self.nodes[i].max_concurrency)
            .collect();
        if free.is_empty() {
            return Err(NoNode::Busy);
        }
        let resident: Vec<usize> = free
            .iter()
            .copied()
            .filter(|&i| self.nodes[i].has_resident(model))
            .collect();
        let key = normalize(model).to_string();
        let sticky = self
            .last
            .lock()
            .ok()
            .and_then(|l| l.get(&key).copied())
            .filter(|i| free.contains(i));
        let set = if !resident.is_empty() {
            resident
        } else if let Some(i) = sticky {
            vec![i]
        } else {
            free
        };
        let chosen = self.two_choices(&set);
        // Claim a slot; if a concurrent pick took the last one, report busy rather than exceed.
        let node = &self.nodes[chosen];
        let prev = node.outstanding.fetch_add(1, Ordering::Relaxed);
        let guard = NodeGuard(node.clone());
        if prev >= node.max_concurrency {
            return Err(NoNode::Busy);
        }
        if let Ok(mut l) = self.last.lock() {
            l.insert(key, chosen);
        }
        Ok((chosen, guard))
    }

    fn two_choices(&self, set: &[usize]) -> usize {
        match set {
            [only] => *only,
            _ => {
                let a = set[rand::random_range(0..set.len())];
                let mut b = set[rand::random_range(0..set.len() - 1)];
                if b == a {
                    b = set[set.len() - 1];
                }
                if self.nodes[b].outstanding() < self.nodes[a].outstanding() {
                    b
                } else {
                    a
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize, max: usize) -> NodePool {
        NodePool::new(
            (0..n)
                .map(|i| Arc::new(Node::new(format!("http://n{i}"), max).unwrap()))
                .collect(),
        )
    }

    #[test]
    fn prefers_resident_then_least_outstanding() {
        let p = pool(3, 8);
        p.nodes[2].set_resident(["big:latest".to_string()].into());
        for _ in 0..20 {
            assert_eq!(p.pick("big", &[]).unwrap().0, 2);
        }
        let held: Vec<_> = (0..4).map(|_| p.pick("big", &[]).unwrap()).collect();
        assert_eq!(p.nodes[2].outstanding(), 4);
        drop(held);
        assert_eq!(p.nodes[2].outstanding(), 0);
        // No node has `small`: it sticks to the node it went to first.
        let (first, g) = p.pick("small", &[]).unwrap();
        drop(g);
        for _ in 0..10 {
            assert_eq!(p.pick("small", &[]).unwrap().0, first);
        }
    }

    #[test]
    fn busy_and_tried_nodes_are_skipped() {
        let p = pool(2, 1);
        let (a, _ga) = p.pick("m", &[]).unwrap();
        let (b, _gb) = p.pick("m", &[a]).unwrap();
        assert_ne!(a, b);
        assert_eq!(p.pick("m", &[]).unwrap_err(), NoNode::Busy);
        assert_eq!(p.pick("m", &[0, 1]).unwrap_err(), NoNode::Unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn three_failures_in_the_window_cool_a_node_down() {
        let p = pool(1, 4);
        let policy = Cooldown::default();
        p.nodes[0].record_failure(&policy);
        p.nodes[0].record_failure(&policy);
        assert!(p.pick("m", &[]).is_ok());
        p.nodes[0].record_failure(&policy);
        assert_eq!(p.pick("m", &[]).unwrap_err(), NoNode::Unavailable);
        tokio::time::advance(std::time::Duration::from_millis(4_900)).await;
        assert!(p.pick("m", &[]).is_err());
        tokio::time::advance(std::time::Duration::from_millis(200)).await;
        assert!(p.pick("m", &[]).is_ok());
        // Failures spread wider than the window never trip it.
        for _ in 0..5 {
            p.nodes[0].record_failure(&policy);
            p.nodes[0].record_failure(&policy);
            tokio::time::advance(std::time::Duration::from_secs(11)).await;
        }
        assert!(p.pick("m", &[]).is_ok());
    }
}
