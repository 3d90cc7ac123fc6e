//! The official `openai` Python package against nfai: models, chat (plain and streamed),
//! completions, embeddings and errors. The venv is `.venv-test` at the repository root
//! (`NFAI_TEST_PYTHON` overrides the interpreter); it is created here when missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::server;

const OPENAI_VERSION: &str = "3.54.0";

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("NFAI_TEST_PYTHON") {
        return p.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join(".venv-test");
    let py = venv.join("bin").join("python");
    let ready = Command::new(&py)
        .args([
            "-c",
            &format!("import openai; assert openai.__version__ == '{OPENAI_VERSION}'"),
        ])
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
            .arg(format!("openai=={OPENAI_VERSION}"))
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install openai=={OPENAI_VERSION} failed");
    }
    py
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
