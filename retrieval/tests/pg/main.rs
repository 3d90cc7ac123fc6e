//! PostgreSQL tests of `nfai_retrieval::pg`: the pool against the local server (statement
//! modes, exhaustion, recycling, errors) and through a real PgBouncer in transaction mode.
//!
//! The local server is PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres); each test
//! works in a database of its own, dropped at the end.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed test, reported where it happens"
)]

mod bouncer;
mod cluster;
mod embed;
mod pool;
mod records;
mod sources;
mod sources_fault;
mod support;
