//! `nfai keys create|list|revoke`: API keys in the store the server uses (the database's with
//! `[database] url`, else the data directory's), without a running server (a server started on a public address needs its first key before it starts). A
//! running server picks up the changes within a couple of seconds.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use nfai_retrieval::pg::PgPool;
use nfai_retrieval::records::PgHandle;

use crate::auth::key::NewKey;
use crate::auth::pg_store::PgKeyStore;
use crate::auth::store::{FileKeyStore, KeyStore};
use crate::config::reserved::DatabasePool;
use crate::config::secret::secret_or_file;
use crate::config::{FileConfig, KeysCommand, KeysStoreArgs};

/// The store the server of these settings uses, and where it is (for messages).
fn store(args: &KeysStoreArgs) -> anyhow::Result<(Arc<dyn KeyStore>, String)> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let url_file = args
        .database_url_file
        .clone()
        .or(file.database.url_file.clone());
    let url = secret_or_file(
        args.database_url.as_ref().or(file.database.url.as_ref()),
        url_file.as_deref(),
        "database URL",
    )?;
    if let Some(url) = url {
        let pool = DatabasePool::layer(&file.database)?.pg_config(url.expose(), 1);
        let pool = PgPool::connect(pool).context("the database pool")?;
        let store = PgKeyStore::new(PgHandle::new(pool));
        return Ok((Arc::new(store), "the database's nfai_api_keys".to_owned()));
    }
    let dir: PathBuf = args
        .data_dir
        .clone()
        .or(file.data.dir)
        .unwrap_or_else(crate::config::reserved::default_data_dir);
    let store = FileKeyStore::in_dir(&dir);
    let place = store.path().display().to_string();
    Ok((Arc::new(store), place))
}

/// Runs `f` to completion on a runtime of its own, on a thread of its own (so that this works
/// from a blocking thread and from inside another runtime alike).
fn block<T: Send>(
    f: impl std::future::Future<Output = anyhow::Result<T>> + Send,
) -> anyhow::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting a runtime")?
                    .block_on(f)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the key store thread panicked"))?
    })
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |n| n.to_string())
}

/// Runs one `nfai keys` command, printing to stdout (it blocks: call it off the async
/// workers).
pub fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    run_to(cmd, &mut std::io::stdout().lock())
}

/// Runs one `nfai keys` command, writing what it prints to `out`.
pub fn run_to(cmd: KeysCommand, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create {
            store: s,
            name,
            models,
            rpm,
            tpm,
            expires_at,
        } => {
            let (store, place) = store(&s)?;
            let new = NewKey {
                name,
                models,
                rpm,
                tpm,
                expires_at,
            };
            let now = crate::time::unix_now();
            new.check(now)
                .map_err(|e| anyhow::anyhow!("--{}: {}", e.field.replace('_', "-"), e.message))?;
            let (record, secret) = new.issue(now);
            block(async { Ok(store.insert(record.clone()).await?) })?;
            eprintln!(
                "created {} ({}) in {place}; the secret is shown only now:",
                record.id, record.name,
            );
            writeln!(out, "{secret}")?;
        }
        KeysCommand::List { store: s } => {
            let (store, _) = store(&s)?;
            let keys = block(async { Ok(store.list().await?) })?;
            writeln!(
                out,
                "{:<22} {:<24} {:>8} {:>10} {:>12}  models",
                "id", "name", "rpm", "tpm", "expires_at"
            )?;
            for k in keys {
                writeln!(
                    out,
                    "{:<22} {:<24} {:>8} {:>10} {:>12}  {}",
                    k.id,
                    k.name,
                    show(k.rpm),
                    show(k.tpm),
                    show(k.expires_at),
                    k.models.map_or_else(|| "*".to_string(), |m| m.join(","))
                )?;
            }
        }
        KeysCommand::Revoke { store: s, id } => {
            let (store, _) = store(&s)?;
            let gone = block(async { Ok(store.remove(id).await?) })?;
            writeln!(out, "revoked {} ({})", gone.id, gone.name)?;
        }
    }
    Ok(())
}
