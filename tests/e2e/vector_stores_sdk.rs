//! The official `openai` Python package against nfai's Files and Vector Stores API:
//! `files.create`, `vector_stores.create`, `files.create_and_poll` / `upload_and_poll`,
//! `file_batches.create_and_poll`, `search` with filters (Vietnamese and English), updates,
//! deletes and 404s (`vector_stores_sdk.py`).

use std::path::PathBuf;

use super::vector_stores_support::{OwnedServer, config, data_dir};

const OPENAI_VERSION: &str = "3.54.0";

/// The shared test venv's Python with the pinned `openai` package.
pub fn python() -> PathBuf {
    crate::common::python_with(".venv-test", "openai", OPENAI_VERSION, "NFAI_TEST_PYTHON")
}

#[tokio::test]
async fn the_openai_sdk_drives_files_and_vector_stores() {
    let dir = data_dir("sdk");
    let server = OwnedServer::start("vs-sdk", &config(&dir, 1024 * 1024, true));
    let base = format!("{}/v1", server.base);
    let py = tokio::task::spawn_blocking(python).await.unwrap();
    crate::common::run_python_script(py, "vector_stores_sdk.py", &base).await;
    server.stop();
}
