//! Support for nfai's end-to-end tests (the tests live in `e2e/`, `cache/` and `gpu/`): the
//! app on port 0 with the real models, HTTP helpers, and a fleet of nodes behind a front.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failed setup is a failed test, reported where it happens"
)]

pub mod common;
pub mod fleet;
