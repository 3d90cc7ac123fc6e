//! The official `openai` Python package against nfai: models, chat (plain and streamed),
//! completions, embeddings and errors. The venv is `.venv-test` at the repository root
//! (`NFAI_TEST_PYTHON` overrides the interpreter); it is created here when missing.

use std::path::PathBuf;

use crate::common::server;

pub(crate) const OPENAI_VERSION: &str = "3.54.0";

fn python() -> PathBuf {
    crate::common::python_with(".venv-test", "openai", OPENAI_VERSION, "NFAI_TEST_PYTHON")
}

#[tokio::test]
async fn the_official_openai_sdk_works() {
    let base = format!("{}/v1", server().base);
    let py = tokio::task::spawn_blocking(python).await.unwrap();
    crate::common::run_python_script(py, "openai_sdk.py", &base).await;
}
