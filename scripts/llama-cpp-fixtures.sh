#!/usr/bin/env bash
# Regenerate the llama.cpp reference fixtures for Gemma 3 270M.
#
# Usage: bash scripts/llama-cpp-fixtures.sh /path/to/gemma-3-270m-q4_k_m.gguf
#
# Builds llama.cpp into .cache/llama.cpp/ if needed (scripts/llama-cpp-build.sh),
# then writes tests/fixtures/gemma-3-270m/{tokenize,greedy}.json.
#
# Environment:
#   FIXTURES_OUT   write elsewhere (e.g. to compare builds with
#                  scripts/compare_greedy_fixtures.py) instead of the committed fixtures
#   LLAMA_CPP_ISA  native (default) or avx2: which llama.cpp build answers (see
#                  scripts/llama-cpp-build.sh). The committed fixtures come from an AVX2-only CPU.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 /path/to/gemma-3-270m-q4_k_m.gguf" >&2
    exit 2
fi
MODEL="$1"
if [[ ! -f "$MODEL" ]]; then
    echo "model not found: $MODEL" >&2
    exit 1
fi
EXPECTED_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

bash scripts/llama-cpp-build.sh

OUT="${FIXTURES_OUT:-tests/fixtures/gemma-3-270m}"
BUILD=".cache/llama.cpp/build$([[ "${LLAMA_CPP_ISA:-native}" == native ]] || echo "-$LLAMA_CPP_ISA")"
mkdir -p "$OUT"
python3 scripts/llama_cpp_fixtures.py \
    --model "$MODEL" \
    --out "$OUT" \
    --server "$BUILD/bin/llama-server" \
    --generator "bash scripts/llama-cpp-fixtures.sh $(basename "$MODEL")"

actual="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_sha256"])' "$OUT/tokenize.json")"
if [[ "$actual" != "$EXPECTED_SHA256" ]]; then
    echo "warning: model sha256 $actual differs from the expected $EXPECTED_SHA256" >&2
fi
