#!/usr/bin/env bash
# The whole test suite: router's module layering, formatting, one build of every target with
# clippy's lints, the default models (fetched once into the model cache), then every crate's
# tests, the end-to-end tests and the OpenAI SDK test, the deployment files and the k6 smoke,
# and last a build and lint of the `cuda` feature.
set -euo pipefail
cd "$(dirname "$0")/.."

export NFAI_MODEL_DIR="${NFAI_MODEL_DIR:-$HOME/.cache/nfai/models}"
# Build outputs live outside the clone, so that a fresh clone on the same machine reuses the
# compiled dependencies (a cold run still passes, only slower).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nfai/target}"

step() { printf '\n== %s\n' "$*"; }

# Network-bound set-up runs in the background while the build takes the cores: the services
# and Debian packages the tests use, and the CUDA toolkit wheels of the last step. Each is
# waited for before the first step that needs it.
prep="$(mktemp -d)"
trap 'rm -rf "$prep"' EXIT
bash scripts/services.sh >"$prep/services.log" 2>&1 &
services_pid=$!
bash -c 'source scripts/cuda-toolkit.sh "${CUDA_COMPUTE_CAP:-89}"' >"$prep/cuda.log" 2>&1 &
cuda_pid=$!
await() { # await <pid> <log> <what>
  local rc=0
  wait "$1" || rc=$?
  cat "$2"
  [ "$rc" = 0 ] || { echo "$3 failed (exit $rc)" >&2; exit "$rc"; }
}

step "router modules: no import cycle"
python3 scripts/check-module-cycles.py

step "cargo fmt --check"
cargo fmt --all -- --check

# Lints run while the crates are compiled: clippy's driver compiles nfai's own crates (Cargo's
# RUSTC_WORKSPACE_WRAPPER, as `cargo clippy` sets it) and the dependencies are compiled once,
# with code, for every step below; `cargo clippy` would first type-check every dependency a
# separate time. Warnings are errors, as with `cargo clippy -- -D warnings`. The binary, the
# tests, the examples and the benchmarks are built together, so their dependencies' features
# are resolved together (the tests' dev-dependencies add some, such as tokio's `test-util`) and
# `cargo test` below reuses every artifact; building the binary alone would compile every crate
# that depends on tokio a second time.
RUSTC_WORKSPACE_WRAPPER="$(dirname "$(rustup which cargo)")/clippy-driver"
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
step "cargo build with clippy's lints (all targets, warnings are errors)"
cargo build --workspace --all-targets --locked

step "default models into $NFAI_MODEL_DIR"
"$CARGO_TARGET_DIR/debug/nfai" models fetch

step "services the tests use (PostgreSQL, Redis, pgbouncer)"
await "$services_pid" "$prep/services.log" "scripts/services.sh"

step "cargo test"
cargo test --workspace --locked

# Alert rules, Alertmanager/Prometheus configs, dashboards, kustomize overlays, the Compose file,
# the runtime image built and run with buildah, and a backup restored into a fresh data dir
# (see deploy/README.md). Then every k6 load scenario briefly against the debug build: status
# classes and error rates only (see docs/CAPACITY.md).
step "deployment files (scripts/check-deploy.sh)"
bash scripts/check-deploy.sh

step "k6 smoke of the load scenarios (scripts/loadtest.sh --smoke)"
bash scripts/loadtest.sh --smoke

# The `cuda` feature compiles and links here without a GPU (nvcc and the CUDA headers from PyPI
# wheels, a link-time stub of libcuda); its GPU tests need a GPU and are run there (see README,
# "GPU builds"). Every target is built with the feature and linted as above. The feature
# changes candle's crates and what depends on them; every other dependency, qdrant-edge
# included, is reused from the build above.
step "cuda feature: build and lint (no GPU needed)"
await "$cuda_pid" "$prep/cuda.log" "the CUDA toolkit set-up"
(
  source scripts/cuda-toolkit.sh "${CUDA_COMPUTE_CAP:-89}"
  cargo build --workspace --all-targets --features cuda --locked
)
