//! Shared servers and HTTP helpers.

use std::net::SocketAddr;
use std::sync::OnceLock;

use nfai_router::config::ServeArgs;
use nfai_router::state::AppState;
use nfai_router::{Application, Config};
use serde_json::{Value, json};

pub struct Server {
    pub base: String,
    pub state: AppState,
}

/// Starts an app with `args` on its own runtime thread; returns once its preloads are Ready.
/// Without a data directory (in `args` or its config file) it gets a fresh one of its own, so
/// that no test sees the machine's `~/.local/share/nfai` (its keys, files or stores).
pub fn start_with(mut args: ServeArgs) -> Server {
    let file_sets_data = args.common.config.as_ref().is_some_and(|p| {
        std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l.trim() == "[data]"))
    });
    if args.data_dir.is_none() && !file_sets_data {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("nfai-e2e-{}-data-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        args.data_dir = Some(dir);
    }
    let (tx, rx) = std::sync::mpsc::channel::<Result<(SocketAddr, AppState), String>>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let built = async {
                let config = Config::from_serve_args(&args).map_err(|e| format!("{e:#}"))?;
                let app = Application::build(config)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                app.wait_ready().await.map_err(|e| format!("{e:#}"))?;
                Ok::<_, String>(app)
            };
            match built.await {
                Ok(app) => {
                    tx.send(Ok((app.local_addr().unwrap(), app.state().clone())))
                        .unwrap();
                    app.run_until(std::future::pending()).await.unwrap();
                }
                Err(e) => tx.send(Err(e)).unwrap(),
            }
        });
    });
    match rx.recv().unwrap() {
        Ok((addr, state)) => Server {
            base: format!("http://{addr}"),
            state,
        },
        Err(e) => panic!("the test server did not start (run `nfai models fetch` first?): {e}"),
    }
}

/// A number from the environment variable `name`, else `default` (benchmark settings).
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Arguments for an app on port 0 whose config file (written to a temp folder) is `toml`.
pub fn config_args(name: &str, toml: &str) -> ServeArgs {
    let dir = std::env::temp_dir().join(format!("nfai-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    let mut args = ServeArgs {
        port: Some(0),
        no_fetch: true,
        ..Default::default()
    };
    args.common.config = Some(path);
    args
}

/// A Python interpreter with `package==version` installed: `$env_override` if set, else a venv
/// `<repository>/<venv>`, created (with pip) when missing or holding another version.
pub fn python_with(
    venv: &str,
    package: &str,
    version: &str,
    env_override: &str,
) -> std::path::PathBuf {
    use std::process::Command;
    if let Some(p) = std::env::var_os(env_override) {
        return p.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(venv);
    let py = venv.join("bin").join("python");
    // Tests run in parallel and share the venv: one pip at a time, or installs collide.
    static PIP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _pip = PIP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let check =
        format!("import importlib.metadata as m; assert m.version('{package}') == '{version}'");
    let ready = Command::new(&py)
        .args(["-c", &check])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv failed");
        let ok = Command::new(&py)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .arg(format!("{package}=={version}"))
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install {package}=={version} failed");
    }
    py
}

/// Both default models, default limits.
pub fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        start_with(ServeArgs {
            port: Some(0),
            no_fetch: true,
            ..Default::default()
        })
    })
}

/// SmolLM2 only, one sequence at a time and one waiting request: for overload and
/// disconnection tests. Its tests hold [`small_lock`].
pub fn small_server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let catalog = nfai_router::catalog::Catalog::with_overrides(Vec::new()).unwrap();
        let mut chat = catalog.resolve("smollm2-135m-instruct").unwrap().clone();
        chat.max_concurrent = 1;
        let file = format!(
            "serve = [\"smollm2-135m-instruct\"]\n[engine]\nqueue_capacity = 1\n\n{}",
            toml_models(&[chat])
        );
        let args = config_args("small", &file);
        start_with(args)
    })
}

fn toml_models(entries: &[nfai_router::catalog::ModelEntry]) -> String {
    #[derive(serde::Serialize)]
    struct F<'a> {
        models: &'a [nfai_router::catalog::ModelEntry],
    }
    toml::to_string(&F { models: entries }).unwrap()
}

pub async fn small_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static L: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    L.get_or_init(|| tokio::sync::Mutex::new(())).lock().await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let res = client()
        .post(format!("{}{path}", server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
    (status, value)
}

/// Asserts OpenAI's error shape and returns `error`.
pub fn assert_error(body: &Value, kind: &str, param: Option<&str>, code: Option<&str>) {
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {body}"
    );
    assert_eq!(e["type"], kind, "{body}");
    assert_eq!(e["param"].as_str(), param, "{body}");
    assert_eq!(e["code"].as_str(), code, "{body}");
    assert_eq!(
        e.as_object().unwrap().len(),
        4,
        "exactly message/type/param/code: {body}"
    );
}

/// Reads an SSE body into its `data:` payloads.
pub async fn sse_data(res: reqwest::Response) -> Vec<String> {
    let text = res.text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

pub fn greedy_chat(content: &str, max_tokens: u32) -> Value {
    json!({
        "model": "smollm2-135m-instruct",
        "messages": [{ "role": "user", "content": content }],
        "max_tokens": max_tokens,
        "temperature": 0
    })
}

/// Runs `tests/e2e/<script>` with `python` and the base URL `base`; it must exit 0 and print
/// `OK` (its output is printed, and shown on failure). Returns its stdout.
pub async fn run_python_script(python: std::path::PathBuf, script: &str, base: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("e2e")
        .join(script);
    let out = tokio::process::Command::new(python)
        .arg(path)
        .arg(base)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("OK"),
        "{script} did not print OK:\n{stdout}"
    );
    stdout
}
