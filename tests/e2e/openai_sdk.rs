//! The official `openai` Python package against nfai: models, chat (plain and streamed),
//! completions, embeddings and errors. The venv is `.venv-test` at the repository root
//! (`NFAI_TEST_PYTHON` overrides the interpreter); it is created here when missing.

use std::path::{Path, PathBuf};

use crate::common::server;

pub(crate) const OPENAI_VERSION: &str = "3.54.0";

fn python() -> PathBuf {
    crate::common::python_with(".venv-test", "openai", OPENAI_VERSION, "NFAI_TEST_PYTHON")
}

#[tokio::test]
async fn the_official_openai_sdk_works() {
    let base = format!("{}/v1", server().base);
    let py = tokio::task::spawn_blocking(python).await.unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("e2e")
        .join("openai_sdk.py");
    let out = tokio::process::Command::new(py)
        .arg(script)
        .arg(&base)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "openai SDK script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK"));
}
