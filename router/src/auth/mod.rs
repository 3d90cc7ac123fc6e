//! API keys: what a key is ([`key`]), where keys are stored ([`store`]: `keys.json` in the data
//! directory behind the [`store::KeyStore`] trait, [`pg_store`]: PostgreSQL when a database is
//! configured, and the static `[auth] keys_file`), the set a
//! server accepts ([`keyring`]) and who sent a request ([`caller::Caller`]).
//!
//! Rules: once any key exists (or the server listens on a public address), every `/v1` and
//! `/api` route needs `Authorization: Bearer <key>`; `/health`, `/ready`, `/openapi.json` and
//! (unless `[auth] private_metrics`) `/metrics` stay open. The admin token is accepted there
//! too and sees everything; user keys never open `/admin`. Secrets are kept only as SHA-256
//! hashes. The check itself runs in the API layer (`api::gate`), which puts the [`Caller`]
//! into the request's extensions for every handler, and the access log, to read.

pub mod caller;
pub mod key;
pub mod keyring;
pub mod pg_store;
pub mod setup;
pub mod store;

pub use self::caller::Caller;
pub use self::key::{KeyRecord, NewKey};
pub use self::keyring::{Keyring, Rejection};
pub use self::store::{FileKeyStore, KeyStore, StoreError};
