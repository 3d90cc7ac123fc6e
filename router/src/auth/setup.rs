//! Turning the configuration into the server's keys and limits at start: the keyring over the
//! key store (the database's with `[database] url`, else the data directory's) and the keys
//! file, the refusal to serve a public address without
//! keys, and the rate limiter (shared through Redis when `[redis] url` is set).

use std::sync::Arc;

use nfai_retrieval::pg::PgPool;
use nfai_retrieval::records::PgHandle;

use crate::auth::keyring::Keyring;
use crate::auth::pg_store::PgKeyStore;
use crate::auth::store::{FileKeyStore, KeyStore, read_keys_file};
use crate::config::Config;
use crate::limits::RateLimiter;

/// How often the key store is checked for keys made or revoked by `nfai keys`.
pub const KEYS_RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The keyring and the rate limiter of `config`; fails when the server would listen on a
/// public address with no key and without `--allow-unauthenticated`.
pub async fn setup(
    config: &Config,
    database: Option<&PgPool>,
) -> anyhow::Result<(Arc<Keyring>, Arc<RateLimiter>)> {
    let r = &config.reserved;
    let file_keys = match &r.auth_keys_file {
        Some(path) => read_keys_file(path)?,
        None => Vec::new(),
    };
    let public = !config.host.is_loopback();
    let (store, place): (Arc<dyn KeyStore>, String) = match database {
        Some(pool) => (
            Arc::new(PgKeyStore::new(PgHandle::new(pool.clone()))),
            "the database's nfai_api_keys".to_owned(),
        ),
        None => {
            let store = FileKeyStore::in_dir(&r.data_dir);
            let place = store.path().display().to_string();
            (Arc::new(store), place)
        }
    };
    let ring = Keyring::load(store, file_keys, public && !r.allow_unauthenticated)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(
        !public || r.allow_unauthenticated || !ring.all().is_empty(),
        "nfai would listen on {}, a public address, and no API key exists. Create one first with \
         `nfai keys create --name <who>` (stored in {place}), or list keys in [auth] keys_file, or \
         pass --allow-unauthenticated (NFAI_ALLOW_UNAUTHENTICATED=true) to serve without keys.",
        config.host,
    );
    let ring = Arc::new(ring);
    ring.watch(KEYS_RELOAD_EVERY);
    let limiter = RateLimiter::new(r.redis_url.is_some());
    if let Some(url) = &r.redis_url {
        crate::limits::redis_sync::start(&limiter, url.expose(), r.redis_key_prefix.clone())?;
    }
    Ok((ring, limiter))
}
