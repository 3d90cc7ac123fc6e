//! The background poll of each upstream: an active health check of every node (when
//! `health_path` is set) and, for affinity, which models each node has resident (Ollama's
//! `/api/ps`, a peer's `/v1/models` `state == "ready"`). It stops when the upstream is dropped.

use std::collections::HashSet;
use std::sync::Weak;

use super::config::Protocol;
use super::table::Upstream;
use super::{ollama, openai};

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
    let rounds = up.pool.nodes.iter().map(|node| async move {
        let call = up.call(node);
        if let Some(path) = &up.cfg.health_path {
            let ok = call.get(path).await.is_ok();
            if ok != node.is_healthy() {
                tracing::info!(upstream = %up.cfg.name, node = %node.url, healthy = ok, "health changed");
            }
            node.set_healthy(ok);
        }
        let mut resident = HashSet::new();
        let mut answered = false;
        if up.protocols.contains(&Protocol::Ollama)
            && let Ok(names) = ollama::resident(call).await
        {
            answered = true;
            resident.extend(names);
        }
        if up.protocols.contains(&Protocol::OpenAi)
            && let Ok(names) = openai::resident(call).await
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
