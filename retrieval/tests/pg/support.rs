//! Scratch databases on the local server, and a PgBouncer in transaction mode in front of it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nfai_retrieval::pg::{PgConfig, PgPool, StatementMode};

pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A database of its own on the local server, dropped (connections and all) when this goes.
pub struct ScratchDb {
    pub name: String,
}

impl ScratchDb {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "nfai_t_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        psql("postgres", &format!("CREATE DATABASE {name}"));
        Self { name }
    }

    pub fn url(&self) -> String {
        format!("{SERVER}/{}", self.name)
    }

    /// Runs SQL on this database through psql (setup outside the pool under test).
    pub fn sql(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// Runs `sql` with psql on the local server, returning its unaligned output; panics on error.
pub fn psql(db: &str, sql: &str) -> String {
    psql_at("127.0.0.1", 5432, db, sql)
}

pub fn psql_at(host: &str, port: u16, db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn pool(url: &str, mode: StatementMode, max_size: usize) -> PgPool {
    let mut config = PgConfig::new(url);
    config.statement_mode = mode;
    config.max_size = max_size;
    PgPool::connect(config).unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether this process runs as root (then servers are started as another user).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes `dir` usable by the unprivileged user a server runs as.
pub fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// Waits until something accepts TCP connections on `port`.
pub async fn wait_for_port(port: u16, what: &str) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not listen on port {port}");
}

/// A PgBouncer (Debian's package) in transaction mode in front of one database of the local
/// server, with `server_pool` server connections; stopped when dropped.
pub struct Bouncer {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Bouncer {
    pub async fn start(db: &str, server_pool: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        open_up(dir.path());
        let port = free_port();
        let d = dir.path().display();
        std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        let ini = format!(
            "[databases]\n\
             {db} = host=127.0.0.1 port=5432 dbname={db} user=postgres\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {d}/users.txt\n\
             pool_mode = transaction\n\
             default_pool_size = {server_pool}\n\
             max_client_conn = 200\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {d}/pgbouncer.log\n\
             pidfile = {d}/pgbouncer.pid\n"
        );
        let ini_path = dir.path().join("pgbouncer.ini");
        std::fs::write(&ini_path, ini).unwrap();
        let mut cmd = Command::new("pgbouncer");
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .arg(&ini_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("pgbouncer is installed (apt-get install pgbouncer)");
        wait_for_port(port, "pgbouncer").await;
        Self {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `test` on a runtime of its own with a scratch directory, and shuts the runtime down
/// (every task that holds a store of the directory ends) before the directory is removed.
pub fn in_scratch_dir<F, Fut>(test: F)
where
    F: FnOnce(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(test(dir.path().to_owned()));
    drop(runtime);
    drop(dir);
}
