//! The official `openai` Python package against nfai's Responses API with `file_search`:
//! `responses.create` not streamed (a Vietnamese question) and with `stream=True`, the
//! `responses.stream` helper, `previous_response_id`, `responses.retrieve` and `.delete`, and
//! refusals (`responses_sdk.py`).

use super::vector_stores_support::{OwnedServer, data_dir};

#[tokio::test]
async fn the_openai_sdk_answers_with_file_search() {
    let dir = data_dir("responses-sdk");
    let toml = format!(
        "serve = [\"smollm2-135m-instruct\", \"multilingual-e5-small\"]\n\
         [cache]\npreload = [\"smollm2-135m-instruct\", \"multilingual-e5-small\"]\n\
         [data]\ndir = \"{}\"\n",
        dir.display()
    );
    let server = OwnedServer::start("responses-sdk", &toml);
    let base = format!("{}/v1", server.base);
    let py = tokio::task::spawn_blocking(super::vector_stores_sdk::python)
        .await
        .unwrap();
    crate::common::run_python_script(py, "responses_sdk.py", &base).await;
    server.stop();
}
