#!/usr/bin/env bash
# The whole test suite: router's module layering, formatting, lints, the default models (fetched
# once into the model cache), then every crate's tests, the end-to-end tests and the OpenAI SDK
# test, and last a build and lint of the `cuda` feature.
set -euo pipefail
cd "$(dirname "$0")/.."

export NFAI_MODEL_DIR="${NFAI_MODEL_DIR:-$HOME/.cache/nfai/models}"
# Build outputs live outside the clone, so that a fresh clone on the same machine reuses the
# compiled dependencies (a cold run still passes, only slower).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nfai/target}"

step() { printf '\n== %s\n' "$*"; }

step "services the tests use (PostgreSQL, Redis, pgbouncer)"
bash scripts/services.sh

step "router modules: no import cycle"
python3 scripts/check-module-cycles.py

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "default models into $NFAI_MODEL_DIR"
cargo run --locked -q -p nfai-router --bin nfai -- models fetch

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

# The `cuda` feature compiles here without a GPU (nvcc and the CUDA headers from PyPI wheels);
# its GPU tests need a GPU and are run there (see README, "GPU builds").
# nfai-retrieval has no `cuda` feature and nothing in it changes with one: it is not linted a
# second time here. The router depends on it, so it (and qdrant-edge) is still type-checked once
# more under the CUDA features' dependency set (about 5 minutes cold, nothing when cached).
# Type-checking and linting every target with the feature catches what the build would, without
# code generation (the CUDA kernels themselves are compiled to PTX by candle-kernels' build script).
step "cuda feature: type-check and lint (no GPU needed)"
(
  source scripts/cuda-toolkit.sh "${CUDA_COMPUTE_CAP:-89}"
  cargo clippy --workspace --exclude nfai-retrieval --all-targets --features cuda --locked -- -D warnings
)
