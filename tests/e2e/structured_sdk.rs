//! Tool calls and structured outputs through client libraries: the official `openai` SDK (a
//! tool-call round trip, plain and streamed, and `response_format` with a JSON Schema) and
//! langchain-openai (`bind_tools`, `with_structured_output`). Both go into `.venv-test`
//! (`NFAI_TEST_PYTHON` overrides the interpreter).

use crate::common::server;

const OPENAI_VERSION: &str = "3.54.0";
const LANGCHAIN_OPENAI_VERSION: &str = "1.8.1";

#[tokio::test]
async fn openai_sdk_and_langchain_call_tools_and_get_structured_output() {
    let base = format!("{}/v1", server().base);
    let py = tokio::task::spawn_blocking(|| {
        crate::common::python_with(".venv-test", "openai", OPENAI_VERSION, "NFAI_TEST_PYTHON");
        crate::common::python_with(
            ".venv-test",
            "langchain-openai",
            LANGCHAIN_OPENAI_VERSION,
            "NFAI_TEST_PYTHON",
        )
    })
    .await
    .unwrap();
    crate::common::run_python_script(py, "structured_sdk.py", &base).await;
}
