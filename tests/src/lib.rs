//! Support for nfai's end-to-end tests (the tests live in `e2e/`, `cache/` and `gpu/`): the
//! app on port 0 with the real models, HTTP helpers, a fleet of nodes behind a front, and the
//! demo CRM indexed and served.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failed setup is a failed test, reported where it happens"
)]

pub mod common;
pub mod demo;
pub mod fleet;
