//! [`Keyring`]: the keys the server accepts, in memory, looked up by the SHA-256 of the
//! presented secret and compared in constant time. It reloads from its [`KeyStore`] when the
//! store changes (keys made or revoked by `nfai keys` while the server runs) and right after the
//! admin API changes it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use subtle::ConstantTimeEq;

use crate::auth::key::{KeyRecord, hash_secret};
use crate::auth::store::{KeyStore, StoreError};

/// Why a presented secret opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No key has this secret (or it was revoked).
    Unknown,
    /// The key is past its `expires_at`.
    Expired,
}

#[derive(Debug, Default)]
struct Snapshot {
    /// Hex SHA-256 → key.
    by_hash: HashMap<String, Arc<KeyRecord>>,
    by_id: HashMap<String, Arc<KeyRecord>>,
    version: Option<String>,
}

/// The accepted keys: the store's and the keys file's.
#[derive(Debug)]
pub struct Keyring {
    store: Arc<dyn KeyStore>,
    file_keys: Vec<KeyRecord>,
    /// Keys are required even while none exists (a server on a public address).
    always_required: bool,
    snapshot: RwLock<Arc<Snapshot>>,
}

impl Keyring {
    /// Loads every key of `store` and `file_keys`.
    pub async fn load(
        store: Arc<dyn KeyStore>,
        file_keys: Vec<KeyRecord>,
        always_required: bool,
    ) -> Result<Self, StoreError> {
        let ring = Self {
            store,
            file_keys,
            always_required,
            snapshot: RwLock::new(Arc::default()),
        };
        ring.reload().await?;
        Ok(ring)
    }

    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the store again.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let version = self.store.version().await;
        let stored = self.store.list().await?;
        let mut snap = Snapshot {
            version,
            ..Default::default()
        };
        for k in self.file_keys.iter().cloned().chain(stored) {
            let k = Arc::new(k);
            snap.by_hash.insert(k.sha256.clone(), k.clone());
            snap.by_id.insert(k.id.clone(), k);
        }
        let snap = Arc::new(snap);
        match self.snapshot.write() {
            Ok(mut s) => *s = snap,
            Err(poisoned) => *poisoned.into_inner() = snap,
        }
        Ok(())
    }

    /// Reloads when the store says it changed.
    pub async fn reload_if_changed(&self) -> Result<bool, StoreError> {
        let now = self.store.version().await;
        if now.is_some() && now != self.snapshot().version {
            self.reload().await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether callers must present a key: some key exists, or the server is on a public
    /// address.
    pub fn required(&self) -> bool {
        self.always_required || !self.snapshot().by_hash.is_empty()
    }

    /// The key whose secret is `secret`, at `now` (Unix seconds).
    pub fn authenticate(&self, secret: &str, now: u64) -> Result<Arc<KeyRecord>, Rejection> {
        let hash = hash_secret(secret);
        let snap = self.snapshot();
        let key = snap.by_hash.get(&hash).ok_or(Rejection::Unknown)?;
        // The map lookup found it by hash; the stored hash is compared once more without an
        // early exit.
        if !bool::from(key.sha256.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(Rejection::Unknown);
        }
        if key.expired(now) {
            return Err(Rejection::Expired);
        }
        Ok(key.clone())
    }

    /// The key `id`.
    pub fn get(&self, id: &str) -> Option<Arc<KeyRecord>> {
        self.snapshot().by_id.get(id).cloned()
    }

    /// Every key, by id.
    pub fn all(&self) -> Vec<Arc<KeyRecord>> {
        let mut v: Vec<_> = self.snapshot().by_id.values().cloned().collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        v
    }

    /// Whether `id` comes from the keys file (not revocable over the API).
    pub fn is_file_key(&self, id: &str) -> bool {
        self.file_keys.iter().any(|k| k.id == id)
    }

    /// Reloads whenever the store changes, every `every`, for as long as the ring lives.
    pub fn watch(self: &Arc<Self>, every: std::time::Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(ring) = weak.upgrade() else { return };
                if let Err(e) = ring.reload_if_changed().await {
                    tracing::warn!("keys: {e}; keeping the keys loaded before");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::key::NewKey;
    use crate::auth::store::FileKeyStore;

    #[tokio::test]
    async fn keys_open_the_ring_until_revoked_or_expired() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::in_dir(dir.path());
        let ring = Keyring::load(Arc::new(store.clone()), vec![], false)
            .await
            .unwrap();
        assert!(!ring.required());
        let (rec, secret) = NewKey {
            name: "a".into(),
            expires_at: Some(1000),
            ..Default::default()
        }
        .issue(1);
        store.insert_now(rec.clone()).unwrap();
        assert!(ring.reload_if_changed().await.unwrap());
        assert!(ring.required());
        assert_eq!(ring.authenticate(&secret, 5).unwrap().id, rec.id);
        assert_eq!(ring.authenticate(&secret, 1000), Err(Rejection::Expired));
        assert_eq!(ring.authenticate("nfai-wrong", 5), Err(Rejection::Unknown));
        store.remove_now(&rec.id).unwrap();
        ring.reload().await.unwrap();
        assert_eq!(ring.authenticate(&secret, 5), Err(Rejection::Unknown));
    }
}
