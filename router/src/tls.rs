//! HTTPS with rustls (no OpenSSL): the certificate chain and key from PEM files, ALPN `h2` and
//! `http/1.1` (set by axum-server's `RustlsConfig`), and a watch that reloads both files when
//! either changes. A reload that fails (a half-written or mismatched pair) keeps the previous
//! certificate and logs why; new connections get the new one, open ones keep theirs.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;

/// How often the files are checked for changes.
pub const RELOAD_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The certificate chain and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    fn stamp(&self) -> Option<(SystemTime, u64, SystemTime, u64)> {
        let c = std::fs::metadata(&self.cert).ok()?;
        let k = std::fs::metadata(&self.key).ok()?;
        Some((c.modified().ok()?, c.len(), k.modified().ok()?, k.len()))
    }
}

/// Reads the files into a server config (ring as the crypto provider).
pub async fn load(files: &TlsFiles) -> anyhow::Result<RustlsConfig> {
    // Another provider may be installed already; either way one is.
    let _ = rustls::crypto::ring::default_provider().install_default();
    RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .with_context(|| {
            format!(
                "loading the TLS certificate {} and key {}",
                files.cert.display(),
                files.key.display()
            )
        })
}

/// Reloads `config` from `files` whenever either file changes, until `config` is dropped by
/// everything else.
pub fn watch(config: RustlsConfig, files: TlsFiles) {
    tokio::spawn(async move {
        let mut last = files.stamp();
        let mut tick = tokio::time::interval(RELOAD_CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = files.stamp();
            if now.is_none() || now == last {
                continue;
            }
            last = now;
            match config.reload_from_pem_file(&files.cert, &files.key).await {
                Ok(()) => {
                    tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
                }
                Err(e) => tracing::warn!(
                    cert = %files.cert.display(),
                    "TLS certificate not reloaded, keeping the previous one: {e}"
                ),
            }
        }
    });
}
