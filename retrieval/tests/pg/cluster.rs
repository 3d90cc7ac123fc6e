//! A PostgreSQL cluster of the test's own, which it may stop and start again.

use std::process::Command;

use crate::support::{free_port, is_root, open_up};

/// A PostgreSQL cluster of its own (`initdb` in a temporary directory, its own port), so a
/// test may stop and restart it. Run as the `postgres` user when the test runs as root.
pub struct PrivateCluster {
    pub port: u16,
    dir: tempfile::TempDir,
}

fn pg_bin(tool: &str) -> std::path::PathBuf {
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin").join(tool))
                .collect()
        })
        .unwrap_or_default();
    found.retain(|p: &std::path::PathBuf| p.exists());
    found.sort();
    found.pop().unwrap_or_else(|| tool.into())
}

fn as_owner(tool: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(tool));
        c
    } else {
        Command::new(pg_bin(tool))
    }
}

fn run_ok(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivateCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        open_up(dir.path());
        let data = dir.path().join("data");
        let mut init = as_owner("initdb");
        init.args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data);
        run_ok(init, "initdb");
        let cluster = Self {
            port: free_port(),
            dir,
        };
        cluster.start_again();
        cluster
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    pub fn start_again(&self) {
        let mut ctl = as_owner("pg_ctl");
        ctl.arg("-D").arg(self.data()).args(["-w", "-l"]);
        ctl.arg(self.dir.path().join("log"));
        ctl.arg("-o").arg(format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        ));
        ctl.arg("start");
        run_ok(ctl, "pg_ctl start");
    }

    pub fn stop(&self) {
        let mut ctl = as_owner("pg_ctl");
        ctl.arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "immediate", "stop"]);
        run_ok(ctl, "pg_ctl stop");
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let mut ctl = as_owner("pg_ctl");
        ctl.arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "immediate", "stop"]);
        let _ = ctl.output();
    }
}
