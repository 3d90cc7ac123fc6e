//! The OpenAPI description: `/openapi.json` is OpenAPI 3.1, equals the checked-in
//! docs/openapi.json (regenerate with `nfai openapi > docs/openapi.json`), bounds the token
//! fields and documents the 401s; schemathesis finds no server error and no response that
//! breaks it.

use serde_json::Value;

use crate::common::*;

const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// The property `name` of an object schema, also inside `allOf` (flattened fields).
fn property<'a>(schema: &'a Value, name: &str) -> &'a Value {
    if let Some(p) = schema["properties"].get(name) {
        return p;
    }
    for s in schema["allOf"].as_array().into_iter().flatten() {
        let p = property(s, name);
        if !p.is_null() {
            return p;
        }
    }
    &Value::Null
}

fn checked_in() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_served_description_is_the_checked_in_one() {
    let s = server();
    let res = client()
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let served: Value = res.json().await.unwrap();
    assert_eq!(
        served,
        checked_in(),
        "docs/openapi.json is stale: run `nfai openapi > docs/openapi.json`"
    );
    assert_eq!(
        nfai_router::api::openapi::document_json(),
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
        )
        .unwrap(),
        "docs/openapi.json must be exactly what `nfai openapi` prints"
    );
    assert!(served["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = served["paths"].as_object().unwrap();
    for p in [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/models",
        "/api/chat",
        "/api/generate",
        "/health",
        "/ready",
        "/metrics",
        "/admin/models",
        "/v1/responses",
        "/v1/responses/{id}",
        "/v1/files",
        "/v1/vector_stores/{id}/search",
    ] {
        assert!(paths.contains_key(p), "{p} is described");
    }
    let chat = &served["paths"]["/v1/chat/completions"]["post"];
    assert!(chat["responses"]["401"].is_object(), "401 is documented");
    let admin = &served["paths"]["/admin/models"]["get"];
    assert!(admin["responses"]["401"].is_object(), "401 is documented");
    let schemas = &served["components"]["schemas"];
    for (schema, field) in [
        ("ChatCompletionRequest", "max_tokens"),
        ("ChatCompletionRequest", "max_completion_tokens"),
        ("CompletionRequest", "max_tokens"),
        ("CreateResponseBody", "max_output_tokens"),
    ] {
        let p = property(&schemas[schema], field);
        assert!(
            p["maximum"].is_number(),
            "{schema}.{field} has a maximum: {p}"
        );
    }
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_response_off_the_description() {
    let py = python_with(
        ".venv-test",
        "schemathesis",
        SCHEMATHESIS_VERSION,
        "NFAI_TEST_PYTHON",
    );
    // No admin token: every admin call is a documented 401, so nothing destructive can run.
    let s = start_with(config_args(
        "schemathesis",
        "serve = [\"smollm2-135m-instruct\", \"all-minilm-l6-v2\"]\n",
    ));
    let st = py.parent().unwrap().join("st");
    let out = tokio::process::Command::new(st)
        .args([
            "run",
            &format!("{}/openapi.json", s.base),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "12",
            "--exclude-path-regex",
            "^/admin/models/.+",
            "--request-timeout",
            "60",
            "--no-color",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .await
        .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}"
    );
}
