#!/usr/bin/env bash
# The whole test suite: formatting, lints, the default models (fetched once into the model
# cache), then every crate's tests, the end-to-end tests and the OpenAI SDK test.
set -euo pipefail
cd "$(dirname "$0")/.."

export NFAI_MODEL_DIR="${NFAI_MODEL_DIR:-$HOME/.cache/nfai/models}"

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "default models into $NFAI_MODEL_DIR"
cargo run --locked -q -p nfai-router --bin nfai -- models fetch

step "cargo test"
cargo test --workspace --locked
