//! The nfai service: OpenAI- and Ollama-compatible HTTP APIs over native engines and upstream
//! servers, configuration, model fetch.
//!
//! `main.rs` only parses the command line and calls into here; tests build the same
//! [`Application`] on port 0. The layers, each importing only those below it (checked by
//! `scripts/check-module-cycles.py`; see docs/ARCHITECTURE.md):
//! - [`api`]: one module per protocol (wire types, handlers, routes);
//! - [`validate`]: protocol-neutral request types and their checks;
//! - [`backend`]: the `Backend` trait, the native engines, the upstream clients and routing;
//! - [`registry`] over the model cache, and [`config`], [`catalog`];
//! - [`context`] (request id, deadline) and [`error`] (every error's status) beside them all.

#![forbid(unsafe_code)]

pub mod admin_cli;
pub mod api;
pub mod app;
pub mod auth;
pub mod backend;
pub mod budgets;
pub mod catalog;
pub mod config;
pub mod context;
pub mod error;
pub mod fetch;
pub mod index_cli;
pub mod keys_cli;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod registry;
pub mod responses;
pub mod retrieval;
pub mod server_file;
pub mod state;
pub mod time;
pub mod tls;
pub mod validate;

pub use api::router;
pub use app::{Application, shutdown_signal};
pub use config::Config;
