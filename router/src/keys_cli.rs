//! `nfai keys create|list|revoke`: API keys in the data directory's store, without a running
//! server (a server started on a public address needs its first key before it starts). A
//! running server picks up the changes within a couple of seconds.

use std::path::PathBuf;

use anyhow::Context;

use crate::auth::key::NewKey;
use crate::auth::store::FileKeyStore;
use crate::config::{FileConfig, KeysCommand, KeysStoreArgs};

fn store(args: &KeysStoreArgs) -> anyhow::Result<FileKeyStore> {
    let from_file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            let file: FileConfig = toml::from_str(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?;
            file.data.dir
        }
        None => None,
    };
    let dir: PathBuf = args
        .data_dir
        .clone()
        .or(from_file)
        .unwrap_or_else(crate::config::reserved::default_data_dir);
    Ok(FileKeyStore::in_dir(&dir))
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |n| n.to_string())
}

/// Runs one `nfai keys` command, printing to stdout (blocking file I/O: call it off the async
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
            let store = store(&s)?;
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
            store.insert_now(record.clone())?;
            eprintln!(
                "created {} ({}) in {}; the secret is shown only now:",
                record.id,
                record.name,
                store.path().display()
            );
            writeln!(out, "{secret}")?;
        }
        KeysCommand::List { store: s } => {
            let keys = store(&s)?.list_now()?;
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
            let gone = store(&s)?.remove_now(&id)?;
            writeln!(out, "revoked {} ({})", gone.id, gone.name)?;
        }
    }
    Ok(())
}
