#!/usr/bin/env bash
# nfai's native engines beside their peers, in one run on the same files and threads:
#   1. llama.cpp (built by scripts/llama-cpp-build.sh): llama-bench pp128/tg128 and
#      llama-batched-bench at 1, 4 and 8 parallel sequences;
#   2. nfai's bench program (benches/examples/bench.rs), release build;
#   3. sentence-transformers on PyTorch in a throwaway venv (.venv-st, git-ignored).
#
# Usage: bash scripts/bench-side-by-side.sh [THREADS] [REPS]
# Set SKIP_LLAMA=1 or SKIP_ST=1 to leave a peer out; LLAMA_CPP_ISA=avx2 or avx512 benches a
# llama.cpp limited to those instruction sets (see scripts/llama-cpp-build.sh); NFAI_KERNELS
# picks nfai's (see README). Models come from `nfai models fetch`.
set -euo pipefail

THREADS="${1:-$(nproc)}"
REPS="${2:-3}"
ST_VERSION="6.2.0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL_DIR="${NFAI_MODEL_DIR:-$HOME/.cache/nfai/models}"
GGUF="$MODEL_DIR/gemma-3-270m/gemma-3-270m-q4_k_m.gguf"
MINILM="$MODEL_DIR/all-minilm-l6-v2"
cd "$REPO_ROOT"

[[ -f "$GGUF" && -d "$MINILM" ]] || cargo run -q --release -p nfai-router --bin nfai -- models fetch
cargo build -q --release -p nfai-benches --example bench

if [[ "${SKIP_LLAMA:-0}" != 1 ]]; then
    bash scripts/llama-cpp-build.sh >/dev/null
    BIN=.cache/llama.cpp/build$([[ "${LLAMA_CPP_ISA:-native}" == native ]] || echo "-$LLAMA_CPP_ISA")/bin
    echo "## llama.cpp ${LLAMA_CPP_ISA:-native} (llama-bench, then llama-batched-bench), $THREADS threads"
    "$BIN/llama-bench" -m "$GGUF" -p 128 -n 128 -t "$THREADS" -r "$REPS"
    "$BIN/llama-batched-bench" -m "$GGUF" -c 4096 -b 2048 -ub 512 -npp 128 -ntg 128 \
        -npl 1,4,8 -t "$THREADS" 2>/dev/null | grep '^|'
fi

echo "## nfai (cargo run --release -p nfai-benches --example bench -- -t $THREADS -r $REPS)"
"${CARGO_TARGET_DIR:-target}"/release/examples/bench -t "$THREADS" -r "$REPS"

if [[ "${SKIP_ST:-0}" != 1 ]]; then
    if [[ ! -x .venv-st/bin/python ]] || ! .venv-st/bin/python -c "import sentence_transformers" 2>/dev/null; then
        python3 -m venv .venv-st
        .venv-st/bin/pip install -q "sentence-transformers==$ST_VERSION"
    fi
    echo "## sentence-transformers $ST_VERSION (benches/scripts/st_bench.py), $THREADS threads"
    .venv-st/bin/python benches/scripts/st_bench.py "$MINILM" "$THREADS" "$REPS"
fi
