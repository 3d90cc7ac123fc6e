//! Nodes of an upstream and how one is chosen ([`Balance`]): by model affinity (nodes with the
//! model resident first, then the node the model was last sent to, then a node that holds no
//! other model, then least outstanding requests with power-of-two random choices) or round robin;
//! per-node concurrency limits, and cooldown after repeated failures.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::time::Instant;

use crate::backend::upstream::http::BaseUri;
use crate::config::routing::{Balance, Cooldown};

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

    /// Whether the last residency poll found any model loaded.
    fn holds_any(&self) -> bool {
        self.resident.read().map(|r| !r.is_empty()).unwrap_or(false)
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
    balance: Balance,
    /// The node each model was last sent to, to keep a model's requests together.
    last: Mutex<HashMap<String, usize>>,
    /// Round robin: the turn of the next request.
    turn: AtomicUsize,
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
    pub fn new(nodes: Vec<Arc<Node>>, balance: Balance) -> Self {
        Self {
            nodes,
            balance,
            last: Mutex::new(HashMap::new()),
            turn: AtomicUsize::new(0),
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
        let chosen = match self.balance {
            Balance::Affinity => self.affine(model, &free),
            Balance::RoundRobin => self.in_turn(&free),
        };
        // Claim a slot; if a concurrent pick took the last one, report busy rather than exceed.
        let node = &self.nodes[chosen];
        let prev = node.outstanding.fetch_add(1, Ordering::Relaxed);
        let guard = NodeGuard(node.clone());
        if prev >= node.max_concurrency {
            return Err(NoNode::Busy);
        }
        Ok((chosen, guard))
    }

    /// Affinity: a node with `model` resident, else the node it last went to, else a node that
    /// neither holds a model nor is another model's last node (so that models spread over the
    /// nodes before they share one), else any; the less busy of two among those. The choice
    /// becomes the model's last node, under one lock so that two models starting together do not
    /// take the same empty node.
    fn affine(&self, model: &str, free: &[usize]) -> usize {
        let key = normalize(model);
        let resident: Vec<usize> = free
            .iter()
            .copied()
            .filter(|&i| self.nodes[i].has_resident(model))
            .collect();
        let Ok(mut last) = self.last.lock() else {
            return self.two_choices(if resident.is_empty() { free } else { &resident });
        };
        let sticky = last.get(key).copied().filter(|i| free.contains(i));
        let chosen = if !resident.is_empty() {
            self.two_choices(&resident)
        } else if let Some(i) = sticky {
            i
        } else {
            let unclaimed: Vec<usize> = free
                .iter()
                .copied()
                .filter(|&i| !self.nodes[i].holds_any())
                .filter(|i| !last.iter().any(|(m, n)| n == i && m != key))
                .collect();
            self.two_choices(if unclaimed.is_empty() {
                free
            } else {
                &unclaimed
            })
        };
        last.insert(key.to_string(), chosen);
        chosen
    }

    /// Round robin: the first of `free` from the next turn on.
    fn in_turn(&self, free: &[usize]) -> usize {
        let n = self.nodes.len().max(1);
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|i| free.contains(i))
            .unwrap_or(free[0])
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
        pool_with(n, max, Balance::Affinity)
    }

    fn pool_with(n: usize, max: usize, balance: Balance) -> NodePool {
        NodePool::new(
            (0..n)
                .map(|i| Arc::new(Node::new(format!("http://n{i}"), max).unwrap()))
                .collect(),
            balance,
        )
    }

    #[test]
    fn models_spread_over_empty_nodes_then_stay() {
        for _ in 0..20 {
            let p = pool(3, 8);
            let first: Vec<usize> = ["a", "b", "c"]
                .iter()
                .map(|m| p.pick(m, &[]).unwrap().0)
                .collect();
            let mut distinct = first.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "{first:?}");
            for (m, &node) in ["a", "b", "c"].iter().zip(&first) {
                assert_eq!(p.pick(m, &[]).unwrap().0, node);
            }
            // A fourth model finds no empty node and shares one.
            assert!(p.pick("d", &[]).is_ok());
        }
        // A node that reports another model resident is not empty.
        for _ in 0..10 {
            let p = pool(2, 8);
            p.nodes[0].set_resident(["other".to_string()].into());
            assert_eq!(p.pick("new", &[]).unwrap().0, 1);
        }
    }

    #[test]
    fn round_robin_takes_nodes_in_turn_whatever_they_hold() {
        let p = pool_with(3, 8, Balance::RoundRobin);
        p.nodes[2].set_resident(["m".to_string()].into());
        let order: Vec<usize> = (0..6).map(|_| p.pick("m", &[]).unwrap().0).collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
        // Tried nodes are skipped: the next one in turn.
        assert_eq!(p.pick("m", &[0]).unwrap().0, 1);
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
