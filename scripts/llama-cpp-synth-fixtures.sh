#!/usr/bin/env bash
# Regenerate the llama.cpp logit fixtures of the tiny synthetic Llama-family models:
# tests/fixtures/synth-logits/{llama,qwen2,qwen3}-tiny.json.
#
# Usage: bash scripts/llama-cpp-synth-fixtures.sh
#
# Each model is written by `nfai models synth` (tiny preset, fixed quantization and seed; the
# tests write the same file again; by default through the `synth_gguf` example of nfai-models,
# which calls the same function without building the router), then scripts/llama_cpp_logits.py records llama.cpp's
# top log-probabilities at every position of fixed prompts. Builds llama.cpp into
# .cache/llama.cpp/ if needed (scripts/llama-cpp-build.sh).
#
# Environment:
#   NFAI_SYNTH     the command that takes --shape/--quant/--seed/--out (default: the
#                  synth_gguf example; `target/debug/nfai models synth` works the same)
#   LLAMA_CPP_ISA  native (default), avx2 or avx512: which llama.cpp build answers
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
bash scripts/llama-cpp-build.sh

BUILD=".cache/llama.cpp/build$([[ "${LLAMA_CPP_ISA:-native}" == native ]] || echo "-$LLAMA_CPP_ISA")"
OUT=tests/fixtures/synth-logits
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
read -r -a SYNTH <<< "${NFAI_SYNTH:-cargo run -q -p nfai-models --example synth_gguf --}"

# shape quant seed: keep in step with models/src/llama/fixture_tests.rs.
for spec in "llama-tiny q4_1 7" "qwen2-tiny q8_0 7" "qwen3-tiny q4_1 7"; do
    read -r shape quant seed <<< "$spec"
    synth="models synth --shape $shape --quant $quant --seed $seed"
    "${SYNTH[@]}" --shape "$shape" --quant "$quant" --seed "$seed" --out "$TMP/$shape.gguf"
    python3 scripts/llama_cpp_logits.py \
        --model "$TMP/$shape.gguf" \
        --out "$OUT/$shape.json" \
        --vocab 512 \
        --synth "$synth" \
        --server "$BUILD/bin/llama-server" \
        --generator "bash scripts/llama-cpp-synth-fixtures.sh"
done
