#!/usr/bin/env bash
# A CUDA 13.0 toolkit from PyPI wheels, for building the `cuda` feature on a machine without one.
# Source it from the repository root:
#   source scripts/cuda-toolkit.sh [COMPUTE_CAP]     # 89 (RTX 40xx, default) or 90 (H100/H200)
#   cargo build --features cuda -p nfai-router --bin nfai
#
# What it sets up, under $NFAI_CUDA_ROOT (default ~/.cache/nfai/cuda13, outside the clone, so that
# every clone on a machine shares one toolkit and cargo reuses the kernels built against it):
# - venv/: the nvcc, headers and runtime libraries, every wheel pinned. nvcc's dependency on
#   nvidia-nvvm is unpinned and the newest one emits PTX that the 13.0 ptxas and driver 580
#   reject, so it is pinned here too.
# - toolkit/: bin and include linked into the wheels' tree, lib64 with the unversioned library
#   names the linker wants, and a link-time stub libcuda.so. The stub only satisfies `-lcuda`
#   when linking; every function returns CUDA_ERROR_NO_DEVICE. It is never shipped: at run
#   time libcuda.so.1 comes from the NVIDIA driver.
# Then it exports CUDA_HOME/CUDA_PATH/CUDA_ROOT, PATH, CUDA_COMPUTE_CAP and CUDARC_CUDA_VERSION,
# and CUDA_RUNTIME_LIBDIR (the wheels' libraries, to carry beside a binary or put on
# LD_LIBRARY_PATH where it runs).
# Kernels are built for one compute capability per build; their PTX JITs on newer GPUs of the
# same family. A binary for an H100 needs CUDA_COMPUTE_CAP=90.

nfai_cuda_setup() {
  local cap="${1:-${CUDA_COMPUTE_CAP:-89}}"
  local root
  root="${NFAI_CUDA_ROOT:-$HOME/.cache/nfai/cuda13}"
  local venv="$root/venv" kit="$root/toolkit"
  local wheels=(
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
    nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88
    nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
  )
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$root/.wheels-ok" ]; then
    echo "cuda-toolkit: installing the CUDA 13.0 wheels into $venv (about 1 GB)" >&2
    python3 -m venv "$venv" || return 1
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "${wheels[@]}" || return 1
    touch "$root/.wheels-ok"
  fi
  local cu13
  cu13="$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')" || return 1
  mkdir -p "$kit/lib64"
  ln -sfn "$cu13/bin" "$kit/bin"
  ln -sfn "$cu13/include" "$kit/include"
  local lib base
  for lib in "$cu13"/lib/lib*.so.*; do
    base="$(basename "$lib")"
    ln -sfn "$lib" "$kit/lib64/${base%%.so.*}.so"
  done
  if [ ! -f "$kit/lib64/libcuda.so" ]; then
    nfai_cuda_stub "$kit/lib64" || return 1
  fi
  export CUDA_HOME="$kit" CUDA_PATH="$kit" CUDA_ROOT="$kit"
  export PATH="$kit/bin:$PATH"
  export CUDA_COMPUTE_CAP="$cap" CUDARC_CUDA_VERSION=13000
  export CUDA_RUNTIME_LIBDIR="$cu13/lib"
  # nvcc compiles the kernels one file at a time unless told otherwise.
  export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
  echo "cuda-toolkit: nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), compute capability $cap" >&2
}

# The link-time libcuda.so: every `cu*` entry point cudarc declares, each returning 100
# (CUDA_ERROR_NO_DEVICE). Its names come from cudarc's sources in cargo's registry.
nfai_cuda_stub() {
  local out="$1" src
  cargo fetch --locked -q || return 1
  src="$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 1 -mindepth 1 -type d \
    -exec find {} -maxdepth 1 -name 'cudarc-*' \; | sort -V | tail -n1)"
  if [ -z "$src" ]; then
    echo "cuda-toolkit: cudarc's sources are not in cargo's registry" >&2
    return 1
  fi
  local c="$out/libcuda-stub.c"
  grep -rhoE 'pub (unsafe )?fn cu[A-Za-z0-9_]+\(' "$src/src/driver/sys" \
    | sed -E 's/.*fn (cu[A-Za-z0-9_]+)\(/\1/' | sort -u \
    | awk '{ printf "int %s(void) { return 100; }\n", $1 }' > "$c"
  if [ ! -s "$c" ]; then
    echo "cuda-toolkit: found no cu* functions in $src" >&2
    return 1
  fi
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$out/libcuda.so" "$c" || return 1
  echo "cuda-toolkit: link stub with $(wc -l < "$c") entry points" >&2
}

nfai_cuda_setup "$@"
