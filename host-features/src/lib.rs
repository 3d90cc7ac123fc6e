//! No code: this crate only pins the features of crates compiled for the build machine (see its
//! Cargo.toml), so that enabling `cuda` recompiles candle's crates and what uses them, not the
//! whole dependency tree.
