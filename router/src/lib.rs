//! The nfai service: OpenAI-compatible HTTP API over native engines, configuration, model fetch.
//!
//! `main.rs` only parses the command line and calls into here; tests build the same
//! [`Application`] on port 0.

pub mod admin_cli;
pub mod app;
pub mod backend;
pub mod budgets;
pub mod catalog;
pub mod config;
pub mod error;
pub mod fetch;
pub mod handlers;
pub mod json;
pub mod ollama_api;
pub mod openai;
pub mod registry;
pub mod state;
pub mod stream;
pub mod upstream;
pub mod validate;

pub use app::{Application, router, shutdown_signal};
pub use config::Config;
