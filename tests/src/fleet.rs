//! A fleet on loopback, for the fleet test and bench: nfai nodes serving three tiny synthetic
//! chat models, each app on its own runtime thread where it can be killed (abruptly: the
//! runtime is dropped with its connections) or stopped (gracefully: in-flight requests drain)
//! and started again on the same port; one nfai in front routing to them through an upstream
//! with health checks; a load of concurrent streamed chat requests that counts every outcome;
//! and the nodes' model swaps read from their `/metrics`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nfai_router::state::AppState;
use nfai_router::{Application, Config};

use crate::common::config_args;

/// The fleet's models: the same tiny Llama shape with different weights.
pub const MODELS: [&str; 3] = ["fleet-a", "fleet-b", "fleet-c"];

/// The model directory holding [`MODELS`] (written once per process).
pub fn model_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nfai-fleet-{}-models", std::process::id()));
        let shape = nfai_models::synth::SynthShape::preset("llama-tiny").unwrap();
        let dtype = nfai_models::synth::parse_dtype("q8_0").unwrap();
        for (seed, id) in MODELS.iter().enumerate() {
            let folder = dir.join(id);
            std::fs::create_dir_all(&folder).unwrap();
            nfai_models::synth::write_synthetic(
                &folder.join("model.gguf"),
                id,
                &shape,
                dtype,
                seed as u64 + 1,
                |_, _| {},
            )
            .unwrap();
        }
        dir
    })
}

/// A node's config: every fleet model in the catalog, at most `slots` of them loaded at once
/// (a further one evicts the least recently used), one compute thread.
pub fn node_config(slots: usize) -> String {
    let mut toml = format!(
        "serve = {MODELS:?}\n[engine]\nthreads = 1\n[cache]\npreload = []\nmax_loaded_models = {slots}\n"
    );
    for id in MODELS {
        toml.push_str(&format!(
            "[[models]]\nid = \"{id}\"\nkind = \"chat\"\nformat = \"gguf\"\npath = \"model.gguf\"\n\
             device = \"cpu\"\ncontext_length = 512\nmax_concurrent = 4\n\
             chat_template = \"{{% for m in messages %}}{{{{ m.content }}}}\\n{{% endfor %}}\"\n"
        ));
    }
    toml
}

/// The front's config: one upstream over `nodes` (polled every 100 ms), one route per model.
pub fn front_config(nodes: &[String], balance: &str) -> String {
    let mut toml = format!(
        "serve = []\n[routing]\nretries = {}\ncooldown_ms = 1000\n\
         [[upstreams]]\nname = \"fleet\"\nnodes = {nodes:?}\nhealth_path = \"/health\"\n\
         health_interval_ms = 100\nconnect_timeout_ms = 1000\nfirst_byte_timeout_ms = 20000\n\
         balance = \"{balance}\"\n",
        nodes.len().saturating_sub(1)
    );
    for id in MODELS {
        toml.push_str(&format!(
            "[[routes]]\nmodel = \"{id}\"\ntargets = [\"openai:fleet/{id}\"]\n"
        ));
    }
    toml
}

enum Stop {
    /// Stop accepting, let in-flight requests finish.
    Drain,
    /// Drop the runtime now, with every connection and request.
    Kill,
}

struct Running {
    state: AppState,
    stop: tokio::sync::oneshot::Sender<Stop>,
    thread: std::thread::JoinHandle<()>,
}

/// One nfai app on 127.0.0.1, on its own runtime thread.
pub struct App {
    name: String,
    toml: String,
    data_dir: PathBuf,
    pub port: u16,
    pub base: String,
    running: Option<Running>,
}

impl App {
    /// Starts an app with the config `toml` on `port` (0: any free one); returns once it listens.
    pub fn start(name: &str, toml: &str, port: u16) -> Self {
        let data_dir =
            std::env::temp_dir().join(format!("nfai-fleet-{}-{name}-data", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).unwrap();
        let mut app = Self {
            name: name.to_string(),
            toml: toml.to_string(),
            data_dir,
            port,
            base: String::new(),
            running: None,
        };
        app.start_again();
        app
    }

    /// Starts the app again on its port (the same one after the first start).
    pub fn start_again(&mut self) {
        assert!(self.running.is_none(), "{} is running", self.name);
        let mut args = config_args(&format!("fleet-{}", self.name), &self.toml);
        args.port = Some(self.port);
        args.data_dir = Some(self.data_dir.clone());
        args.common.model_dir = Some(model_dir().to_path_buf());
        let (tx, rx) = std::sync::mpsc::channel::<Result<(SocketAddr, AppState), String>>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<Stop>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let killed = rt.block_on(async move {
                let built = async {
                    let config = Config::from_serve_args(&args).map_err(|e| format!("{e:#}"))?;
                    let app = Application::build(config)
                        .await
                        .map_err(|e| format!("{e:#}"))?;
                    app.wait_ready().await.map_err(|e| format!("{e:#}"))?;
                    Ok::<_, String>(app)
                };
                let app = match built.await {
                    Ok(app) => app,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return false;
                    }
                };
                let _ = tx.send(Ok((app.local_addr().unwrap(), app.state().clone())));
                let (drain, drained) = tokio::sync::oneshot::channel::<()>();
                let serve = app.run_until(async move {
                    let _ = drained.await;
                });
                tokio::pin!(serve);
                tokio::select! {
                    _ = &mut serve => false,
                    how = stopped => match how {
                        Ok(Stop::Kill) => true,
                        Ok(Stop::Drain) | Err(_) => {
                            let _ = drain.send(());
                            let _ = serve.await;
                            false
                        }
                    },
                }
            });
            if killed {
                // Every task (and so every connection) is dropped without waiting.
                rt.shutdown_background();
            } else {
                drop(rt);
            }
        });
        match rx.recv().unwrap() {
            Ok((addr, state)) => {
                self.port = addr.port();
                self.base = format!("http://{addr}");
                self.running = Some(Running {
                    state,
                    stop,
                    thread,
                });
            }
            Err(e) => panic!("{} did not start: {e}", self.name),
        }
    }

    /// Whether the app runs (it was not killed or stopped since its last start).
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The running app's state.
    pub fn state(&self) -> &AppState {
        &self.running.as_ref().unwrap().state
    }

    fn halt(&mut self, how: Stop) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(how);
            drop(r.state);
            let _ = r.thread.join();
        }
    }

    /// Stops the app abruptly: open connections are cut, in-flight requests end unanswered, and
    /// the port refuses new connections.
    pub fn kill(&mut self) {
        self.halt(Stop::Kill);
    }

    /// Stops the app gracefully: it stops accepting and returns once in-flight requests are done.
    pub fn stop(&mut self) {
        self.halt(Stop::Drain);
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.halt(Stop::Kill);
    }
}

/// Three nodes and the front.
pub struct Fleet {
    pub nodes: Vec<App>,
    pub front: App,
}

impl Fleet {
    /// Starts three nodes of `slots` loaded models each, and a front balancing with `balance`
    /// (`affinity` or `round_robin`).
    pub fn start(name: &str, slots: usize, balance: &str) -> Self {
        let nodes: Vec<App> = (0..3)
            .map(|i| App::start(&format!("{name}-node{i}"), &node_config(slots), 0))
            .collect();
        let urls: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
        let front = App::start(&format!("{name}-front"), &front_config(&urls, balance), 0);
        Self { nodes, front }
    }

    /// Whether the front's last health check found node `i` up.
    pub fn front_sees_healthy(&self, i: usize) -> bool {
        self.front.state().routes().upstreams[0].pool.nodes[i].is_healthy()
    }

    /// Waits up to `limit` for the front to see node `i` as `healthy`; whether it did.
    pub async fn await_front_sees(&self, i: usize, healthy: bool, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.front_sees_healthy(i) == healthy {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Attempts the front moved to another node after one failed (its
    /// `nfai_upstream_fallbacks_total`).
    pub async fn retried(&self) -> u64 {
        let text = reqwest::get(format!("{}/metrics", self.front.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        sum(&text, "nfai_upstream_fallbacks_total{", "")
    }

    /// Model loads and evictions summed over the running nodes' `/metrics`.
    pub async fn swaps(&self) -> Swaps {
        let mut s = Swaps::default();
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            let text = reqwest::get(format!("{}/metrics", n.base))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            s.loads += sum(&text, "nfai_model_loads_total{", "result=\"success\"");
            s.evictions += sum(&text, "nfai_model_evictions_total{", "reason=\"lru\"");
        }
        s
    }
}

/// Model loads and least-recently-used evictions over a fleet's nodes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swaps {
    pub loads: u64,
    pub evictions: u64,
}

/// The sum of the series of a family (`prefix`) whose labels contain `label`.
fn sum(text: &str, prefix: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// What a load saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Streams that ended with `[DONE]`.
    pub ok: u64,
    /// Requests that failed before their stream started: a non-2xx status or a transport error.
    pub failed: Vec<String>,
    /// Streams that started (status 200) and then broke or ended with an error event.
    pub broken: u64,
    /// Latency of each `ok` request, whole stream.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed.extend(other.failed);
        self.broken += other.broken;
        self.latencies.extend(other.latencies);
    }

    /// Completed requests per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of the latencies.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        if l.is_empty() {
            return Duration::ZERO;
        }
        let i = ((l.len() - 1) as f64 * q).round() as usize;
        l[i.min(l.len() - 1)]
    }
}

/// Concurrent clients sending short streamed chat requests to the front, each naming one of
/// [`MODELS`] at random (a fixed seed per client), until stopped or `per_client` requests.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    started: Instant,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Load {
    pub fn start(base: &str, clients: usize, per_client: Option<usize>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let http = reqwest::Client::new();
        let tasks = (0..clients)
            .map(|c| {
                let (stop, ok, http) = (stop.clone(), ok.clone(), http.clone());
                let url = format!("{base}/v1/chat/completions");
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ (c as u64 + 1).wrapping_mul(7919);
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) && per_client.is_none_or(|p| n < p) {
                        n += 1;
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let model = MODELS[(seed % MODELS.len() as u64) as usize];
                        let t0 = Instant::now();
                        match one(&http, &url, model).await {
                            Outcome::Ok => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                tally.ok += 1;
                                tally.latencies.push(t0.elapsed());
                            }
                            Outcome::Failed(why) => tally.failed.push(format!("{model}: {why}")),
                            Outcome::Broken => tally.broken += 1,
                        }
                    }
                    tally
                })
            })
            .collect();
        Self {
            stop,
            ok,
            started: Instant::now(),
            tasks,
        }
    }

    /// Requests completed so far.
    pub fn completed(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the clients after their current request; returns what they saw.
    pub async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        self.join().await
    }

    /// Waits for the clients to finish their requests.
    pub async fn join(self) -> Tally {
        let mut all = Tally::default();
        for t in self.tasks {
            all.merge(t.await.unwrap());
        }
        all.elapsed = self.started.elapsed();
        all
    }
}

enum Outcome {
    Ok,
    Failed(String),
    Broken,
}

async fn one(http: &reqwest::Client, url: &str, model: &str) -> Outcome {
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Where is my order?"}],
        "max_tokens": 4,
        "stream": true,
    });
    let mut res = match http.post(url).json(&body).send().await {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("transport: {e}")),
    };
    let status = res.status();
    if !status.is_success() {
        let text = res.text().await.unwrap_or_default();
        return Outcome::Failed(format!("{status}: {text}"));
    }
    let mut text = Vec::new();
    loop {
        match res.chunk().await {
            Ok(Some(c)) => text.extend_from_slice(&c),
            Ok(None) => break,
            Err(_) => return Outcome::Broken,
        }
    }
    let text = String::from_utf8_lossy(&text);
    let errored = text.lines().any(|l| l.starts_with("data: {\"error\""));
    if text.contains("data: [DONE]") && !errored {
        Outcome::Ok
    } else {
        Outcome::Broken
    }
}

/// The CPU's model name (`/proc/cpuinfo`), for bench reports.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
