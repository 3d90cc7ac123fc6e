#!/usr/bin/env bash
# Regenerate the llama.cpp reference fixtures of a real model: Gemma 3 270M or
# SmolLM2-135M-Instruct (the family is told by the file name).
#
# Usage: bash scripts/llama-cpp-fixtures.sh /path/to/gemma-3-270m-q4_k_m.gguf
#        bash scripts/llama-cpp-fixtures.sh /path/to/SmolLM2-135M-Instruct.Q4_1.gguf
#
# Builds llama.cpp into .cache/llama.cpp/ if needed (scripts/llama-cpp-build.sh),
# then writes tests/fixtures/<model id>/{tokenize,greedy}.json.
#
# Environment:
#   FIXTURES_OUT   write elsewhere (e.g. to compare builds with
#                  scripts/compare_greedy_fixtures.py) instead of the committed fixtures
#   LLAMA_CPP_ISA  native (default) or avx2: which llama.cpp build answers (see
#                  scripts/llama-cpp-build.sh). The committed fixtures come from an AVX2-only CPU.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 /path/to/{gemma-3-270m-q4_k_m,SmolLM2-135M-Instruct.Q4_1}.gguf" >&2
    exit 2
fi
MODEL="$1"
if [[ ! -f "$MODEL" ]]; then
    echo "model not found: $MODEL" >&2
    exit 1
fi
case "$(basename "$MODEL")" in
    gemma-3-270m*) FAMILY=gemma; ID=gemma-3-270m
        EXPECTED_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818" ;;
    SmolLM2-135M-Instruct*) FAMILY=smollm2; ID=smollm2-135m-instruct
        EXPECTED_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53" ;;
    *) echo "unknown model file $(basename "$MODEL"): expected Gemma 3 270M or SmolLM2-135M-Instruct" >&2
        exit 2 ;;
esac

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

bash scripts/llama-cpp-build.sh

OUT="${FIXTURES_OUT:-tests/fixtures/$ID}"
BUILD=".cache/llama.cpp/build$([[ "${LLAMA_CPP_ISA:-native}" == native ]] || echo "-$LLAMA_CPP_ISA")"
mkdir -p "$OUT"
python3 scripts/llama_cpp_fixtures.py \
    --model "$MODEL" \
    --out "$OUT" \
    --server "$BUILD/bin/llama-server" \
    --family "$FAMILY" \
    --generator "bash scripts/llama-cpp-fixtures.sh $(basename "$MODEL")"

actual="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_sha256"])' "$OUT/tokenize.json")"
if [[ "$actual" != "$EXPECTED_SHA256" ]]; then
    echo "warning: model sha256 $actual differs from the expected $EXPECTED_SHA256" >&2
fi
