//! End-to-end tests: the nfai app on port 0 with the real default models, driven over HTTP.
//!
//! Models must be in the model dir (`nfai models fetch`, which the test command runs first).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed test, reported where it happens"
)]

mod auth;
mod auth_support;
mod chat;
mod completions;
mod console;
mod embeddings;
mod errors;
mod fleet;
mod limits;
mod logs;
mod metrics;
mod models;
mod ollama_sdk;
mod ollama_wire;
mod openai_sdk;
mod openapi;
mod overload;
mod ownership;
mod prefix_cache;
mod replicas;
mod responses;
mod responses_sdk;
mod sources;
mod structured;
mod structured_sdk;
mod tls;
mod upstream;
mod upstream_affinity;
mod upstream_faults;
mod upstream_support;
mod upstream_tools;
mod vector_stores;
mod vector_stores_sdk;
mod vector_stores_support;

use nfai_tests::common;
