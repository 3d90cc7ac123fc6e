//! The `<dest>.verified` marker: proof that a file was hashed, tied to its size and mtime.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::report::{BUF_SIZE, Progress, Reporter};

/// Contents of a marker file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Marker {
    /// Lowercase hex SHA-256 of the file.
    pub(crate) sha256: String,
    pub(crate) size: u64,
    /// Modification time of the file, nanoseconds since the Unix epoch.
    pub(crate) mtime_ns: u64,
}

/// `<path>.verified`.
pub(crate) fn marker_path(path: &Path) -> PathBuf {
    with_suffix(path, ".verified")
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn mtime_ns(meta: &fs::Metadata) -> Option<u64> {
    let d = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(d.as_nanos()).ok()
}

/// The marker of `path` when the file exists and the marker matches its size and mtime (and
/// `expected`, the catalog's hash, when given).
pub(crate) fn read_valid(path: &Path, expected: Option<&str>) -> Option<Marker> {
    let meta = fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let text = fs::read_to_string(marker_path(path)).ok()?;
    let marker: Marker = serde_json::from_str(&text).ok()?;
    let ok = marker.size == meta.len()
        && Some(marker.mtime_ns) == mtime_ns(&meta)
        && expected.is_none_or(|e| e.eq_ignore_ascii_case(&marker.sha256));
    ok.then_some(marker)
}

/// Writes the marker of `path` (whose hash is `sha256`) atomically; returns it.
pub(crate) fn write(path: &Path, sha256: &str) -> anyhow::Result<Marker> {
    let meta =
        fs::metadata(path).with_context(|| format!("reading metadata of {}", path.display()))?;
    let mtime_ns = mtime_ns(&meta)
        .with_context(|| format!("{} has no usable modification time", path.display()))?;
    let marker = Marker {
        sha256: sha256.to_ascii_lowercase(),
        size: meta.len(),
        mtime_ns,
    };
    let target = marker_path(path);
    let tmp = with_suffix(path, ".verified.tmp");
    let json = serde_json::to_string(&marker)?;
    fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &target)
        .with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))?;
    Ok(marker)
}

/// Removes the marker of `path`, if any.
pub(crate) fn remove(path: &Path) -> anyhow::Result<()> {
    let target = marker_path(path);
    match fs::remove_file(&target) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", target.display()))
        }
        _ => Ok(()),
    }
}

/// Lowercase hex SHA-256 of the file at `path` (shown as `label` in progress output).
pub(crate) fn hash_file(path: &Path, label: &str, out: &Reporter) -> anyhow::Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let total = file
        .metadata()
        .with_context(|| format!("reading metadata of {}", path.display()))?
        .len();
    let mut progress = Progress::new(out, format!("verifying {label}"), total);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
    progress.finish("");
    Ok(format!("{:x}", hasher.finalize()))
}
