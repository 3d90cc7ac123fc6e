//! HTTP handlers, one module per API.

pub mod admin;
pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod health;
pub mod metrics;
pub mod models;
