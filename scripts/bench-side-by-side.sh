#!/usr/bin/env bash
# nfai's native engines beside their peers, in one run on the same files, CPU and threads:
#   1. the language models (Gemma 3 270M Q4_K_M and SmolLM2-135M-Instruct Q4_1) beside llama.cpp
#      (built from the PyPI sdist by scripts/llama-cpp-build.sh): llama-bench pp128/tg128,
#      llama-batched-bench at batch 1/4/8, warm HTTP requests to llama-server one at a time and
#      8 at once (its 8 slots against nfai's max_concurrent 8), against nfai's bench example
#      (benches/examples/bench.rs) and `nfai serve`, alternating; one table with
#      ratios, the CPU model and the instruction sets (benches/scripts/llm_side_by_side.py);
#   2. all-MiniLM-L6-v2 beside sentence-transformers on PyTorch in a throwaway venv (.venv-st,
#      git-ignored).
#
# Usage: bash scripts/bench-side-by-side.sh [THREADS] [REPS]
#
# Environment:
#   PROFILE        dev (default: the dev profile as scripts/bench-config.sh sets it, a few
#                  minutes to build) or release (thin LTO; a long build on a small machine)
#   LLAMA_CPP_ISA  native (default), avx2 or avx512: which llama.cpp build (see
#                  scripts/llama-cpp-build.sh); use avx512 on VMs that report AMX but fault on it
#   NFAI_KERNELS   nfai's kernel set (avx512-vnni, avx2, portable; see README "CPU builds")
#   MODELS         gemma,smollm2 (default) or one of them
#   REQUESTS       HTTP requests per engine and model (default 20)
#   SKIP_LLM=1, SKIP_ST=1 leave a part out.
# Models come from `nfai models fetch`. Once llama.cpp is built the whole run takes 5-8 minutes
# on 2 cores.
set -euo pipefail

THREADS="${1:-$(nproc)}"
REPS="${2:-3}"
PROFILE="${PROFILE:-dev}"
ST_VERSION="6.2.0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL_DIR="${NFAI_MODEL_DIR:-$HOME/.cache/nfai/models}"
GEMMA="$MODEL_DIR/gemma-3-270m/gemma-3-270m-q4_k_m.gguf"
SMOLLM2="$MODEL_DIR/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM="$MODEL_DIR/all-minilm-l6-v2"
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
cd "$REPO_ROOT"

case "$PROFILE" in
    dev)
        # The dependencies on the model paths (kernels, tensors, tokenizers), models and
        # inference are at opt-level 3 in the dev profile already (the HTTP dependencies are at
        # 1, which costs microseconds a request, not the milliseconds compared here); nfai's
        # other crates are raised, and checks the release build lacks are dropped, by
        # scripts/bench-config.sh, the same set as the other benches so that builds are shared.
        source "$REPO_ROOT/scripts/bench-config.sh"
        PROFILE_ARGS=("${BENCH_CONFIG[@]}")
        OUT="$TARGET/debug" ;;
    release) PROFILE_ARGS=(--release); OUT="$TARGET/release" ;;
    *) echo "PROFILE must be dev or release, not $PROFILE" >&2; exit 2 ;;
esac

# One build of both programs over the whole workspace, so that the dependencies resolve as in
# the test suite's build and are reused from it (`-p` would resolve their features anew).
cargo build -q "${PROFILE_ARGS[@]}" --workspace --example bench --bin nfai
[[ -f "$GEMMA" && -f "$SMOLLM2" && -d "$MINILM" ]] || "$OUT/nfai" models fetch

if [[ "${SKIP_LLM:-0}" != 1 ]]; then
    bash scripts/llama-cpp-build.sh >/dev/null
    ISA="${LLAMA_CPP_ISA:-native}"
    BIN="$REPO_ROOT/.cache/llama.cpp/build$([[ "$ISA" == native ]] || echo "-$ISA")/bin"
    MODEL_ARGS=()
    for m in $(echo "${MODELS:-gemma,smollm2}" | tr , ' '); do
        case "$m" in
            gemma) MODEL_ARGS+=(--model "gemma=$GEMMA") ;;
            smollm2) MODEL_ARGS+=(--model "smollm2=$SMOLLM2") ;;
            *) echo "MODELS: unknown model $m" >&2; exit 2 ;;
        esac
    done
    echo "## language models: llama.cpp ($ISA) beside nfai ($PROFILE build), $THREADS threads"
    python3 benches/scripts/llm_side_by_side.py --llama-bin "$BIN" \
        --nfai-bench "$OUT/examples/bench" --nfai "$OUT/nfai" -t "$THREADS" -r "$REPS" \
        -n "${REQUESTS:-20}" --llama-isa "$ISA" --profile "$PROFILE" "${MODEL_ARGS[@]}"
fi

if [[ "${SKIP_ST:-0}" != 1 ]]; then
    echo "## nfai MiniLM ($OUT/examples/bench -t $THREADS -r $REPS embed)"
    "$OUT/examples/bench" -t "$THREADS" -r "$REPS" embed
    if [[ ! -x .venv-st/bin/python ]] || ! .venv-st/bin/python -c "import sentence_transformers" 2>/dev/null; then
        python3 -m venv .venv-st
        .venv-st/bin/pip install -q "sentence-transformers==$ST_VERSION"
    fi
    echo "## sentence-transformers $ST_VERSION (benches/scripts/st_bench.py), $THREADS threads"
    .venv-st/bin/python benches/scripts/st_bench.py "$MINILM" "$THREADS" "$REPS"
fi
