//! The official `ollama` Python package against nfai's Ollama API: chat (streamed and not),
//! generate, embed, list and ps, through the default server and through a routed server whose
//! names go to an upstream. The venv is `.venv-ollama-test` at the repository root
//! (`NFAI_TEST_OLLAMA_PYTHON` overrides the interpreter); it is created here when missing.

use std::path::{Path, PathBuf};

use crate::common::server;
use crate::upstream::routed_server;

const OLLAMA_VERSION: &str = "0.6.3";

/// The interpreter, set up once per test process (both tests share it).
fn python() -> PathBuf {
    static PY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PY.get_or_init(setup).clone()
}

fn setup() -> PathBuf {
    crate::common::python_with(
        ".venv-ollama-test",
        "ollama",
        OLLAMA_VERSION,
        "NFAI_TEST_OLLAMA_PYTHON",
    )
}

async fn run(base: &str, chat_model: &str, embed_model: &str) {
    let py = tokio::task::spawn_blocking(python).await.unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("e2e")
        .join("ollama_sdk.py");
    let out = tokio::process::Command::new(py)
        .arg(script)
        .args([base, chat_model, embed_model])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "ollama SDK script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_ollama_client_works() {
    run(&server().base, "smollm2-135m-instruct", "all-minilm-l6-v2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_ollama_client_works_through_routes() {
    run(&routed_server().base, "ollama-smollm2", "remote-minilm").await;
}
