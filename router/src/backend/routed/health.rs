//! The background poll of each upstream: an active health check of every node (when
//! `health_path` is set) and, for affinity, which models each node has resident (Ollama's
//! `/api/ps`, a peer's `/v1/models` `state == "ready"`). It stops when the upstream is dropped.

use std::collections::HashSet;
use std::sync::Weak;

use super::upstream::Upstream;
use crate::backend::{Backend, BackendHealth};

/// Polls `upstream` every `health_interval` until it is dropped.
pub fn spawn(upstream: Weak<Upstream>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        loop {
            let Some(up) = upstream.upgrade() else { return };
            poll(&up).await;
            let interval = up.cfg.health_interval;
            drop(up);
            tokio::time::sleep(interval).await;
        }
    });
}

/// One round over every node.
pub async fn poll(up: &Upstream) {
    let rounds = up.pool.nodes.iter().enumerate().map(|(i, node)| async move {
        let ollama = up.ollama.get(i);
        let openai = up.openai.get(i);
        if up.cfg.health_path.is_some() {
            let health = match (ollama, openai) {
                (Some(c), _) => c.health().await,
                (None, Some(c)) => c.health().await,
                (None, None) => BackendHealth::Healthy,
            };
            let ok = health == BackendHealth::Healthy;
            if ok != node.is_healthy() {
                tracing::info!(upstream = %up.cfg.name, node = %node.url, healthy = ok, "health changed");
            }
            node.set_healthy(ok);
        }
        let mut resident = HashSet::new();
        let mut answered = false;
        if let Some(c) = ollama
            && let Ok(names) = c.resident().await
        {
            answered = true;
            resident.extend(names);
        }
        if let Some(c) = openai
            && let Ok(names) = c.resident().await
        {
            answered = true;
            resident.extend(names);
        }
        if answered {
            node.set_resident(resident);
        }
    });
    futures::future::join_all(rounds).await;
}
