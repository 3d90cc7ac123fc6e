//! `<data dir>/server.json`: where the running server that holds a data directory answers
//! (its process id and base URL), so that `nfai index` asks it rather than writing the same
//! records from a second process. Written when the server binds, removed when it stops.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerFile {
    pub pid: u32,
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
}

/// The file's path in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("server.json")
}

/// The base URL a local client reaches `addr` at (an unspecified address becomes loopback).
pub fn local_url(addr: SocketAddr, tls: bool) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// Records this process as the server of `data_dir`.
pub fn write(data_dir: &Path, url: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let file = ServerFile {
        pid: std::process::id(),
        url: url.to_owned(),
    };
    let tmp = data_dir.join(".server.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&file).unwrap_or_default())?;
    std::fs::rename(tmp, path(data_dir))
}

/// Removes the file if this process wrote it.
pub fn remove(data_dir: &Path) {
    if read(data_dir).is_some_and(|f| f.pid == std::process::id()) {
        let _ = std::fs::remove_file(path(data_dir));
    }
}

/// The server recorded in `data_dir`, when its process still runs.
pub fn running(data_dir: &Path) -> Option<ServerFile> {
    read(data_dir).filter(|f| Path::new(&format!("/proc/{}", f.pid)).exists())
}

fn read(data_dir: &Path) -> Option<ServerFile> {
    let bytes = std::fs::read(path(data_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_names_this_process_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(running(dir.path()), None);
        let url = local_url("0.0.0.0:8080".parse().unwrap(), false);
        assert_eq!(url, "http://127.0.0.1:8080");
        write(dir.path(), &url).unwrap();
        assert_eq!(running(dir.path()).map(|f| f.url), Some(url));
        remove(dir.path());
        assert_eq!(running(dir.path()), None);
    }
}
