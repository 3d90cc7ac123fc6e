//! [`PgKeyStore`]: API keys in PostgreSQL (`nfai_api_keys`, one row per key, the record as
//! JSON), used when `[database] url` is set so that every replica, and `nfai keys`, see the
//! same keys. The version the keyring polls is a digest of the stored ids, so a key made or
//! revoked on any replica reaches the others within one poll.

use futures::FutureExt;
use futures::future::BoxFuture;
use nfai_retrieval::pg::Type;
use nfai_retrieval::records::PgHandle;

use crate::auth::key::KeyRecord;
use crate::auth::store::{KeyStore, StoreError};

/// The keys in a PostgreSQL database; cheap to clone.
#[derive(Debug, Clone)]
pub struct PgKeyStore {
    db: PgHandle,
}

fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

fn decode(row: &nfai_retrieval::pg::Row) -> Result<KeyRecord, StoreError> {
    let doc: &str = row.try_get("doc").map_err(db)?;
    serde_json::from_str(doc)
        .map_err(|e| StoreError::Database(format!("a stored key is not valid: {e}")))
}

impl PgKeyStore {
    /// The keys in `db`'s database (the table is made on first use).
    pub fn new(db: PgHandle) -> Self {
        Self { db }
    }
}

impl KeyStore for PgKeyStore {
    fn list(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, StoreError>> {
        async move {
            let rows = self
                .db
                .query("SELECT doc FROM nfai_api_keys", &[])
                .await
                .map_err(db)?;
            rows.iter().map(decode).collect()
        }
        .boxed()
    }

    fn insert(&self, record: KeyRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            let doc = serde_json::to_string(&record).map_err(db)?;
            self.db
                .query(
                    "INSERT INTO nfai_api_keys (id, doc) VALUES ($1, $2)",
                    &[(&record.id, Type::TEXT), (&doc, Type::TEXT)],
                )
                .await
                .map_err(db)
                .map(|_| ())
        }
        .boxed()
    }

    fn remove(&self, id: String) -> BoxFuture<'_, Result<KeyRecord, StoreError>> {
        async move {
            let rows = self
                .db
                .query(
                    "DELETE FROM nfai_api_keys WHERE id = $1 RETURNING doc",
                    &[(&id, Type::TEXT)],
                )
                .await
                .map_err(db)?;
            match rows.first() {
                Some(row) => decode(row),
                None => Err(StoreError::NotFound(id)),
            }
        }
        .boxed()
    }

    fn version(&self) -> BoxFuture<'_, Option<String>> {
        async move {
            let rows = self
                .db
                .query(
                    "SELECT count(*)::text || ':' || coalesce(md5(string_agg(id, ',' ORDER BY id)), '') \
                     AS v FROM nfai_api_keys",
                    &[],
                )
                .await
                .ok()?;
            rows.first()?.try_get::<_, String>("v").ok()
        }
        .boxed()
    }
}
