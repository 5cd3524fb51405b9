#!/usr/bin/env bash
# Compiles (syntax only) the sources whose CUDA paths are behind __has_include, against this machine's LibTorch
# headers plus the CUDA toolkit's, so that the GPU-only code (CUDA graphs, GPU memory, device names) is checked
# without a GPU. Skips with a message where no CUDA toolkit headers are installed. LibTorch 1.13's Debian package
# lacks one generated header (c10/cuda/impl/cuda_cmake_macros.h); a one-line stand-in is written to a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
cuda=${CUDA_HOME:-/usr/local/cuda}
if [ ! -f "$cuda/include/cuda_runtime_api.h" ] || [ ! -f /usr/include/ATen/cuda/CUDAGraph.h ]; then
  echo "check-cuda-syntax: no CUDA toolkit headers at $cuda/include or no ATen CUDA headers; nothing checked"
  exit 0
fi
headers=$(mktemp -d)
trap 'rm -rf "$headers"' EXIT
mkdir -p "$headers/c10/cuda/impl"
printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' >"$headers/c10/cuda/impl/cuda_cmake_macros.h"
printf '#define DMDBENCH_GIT_COMMIT "syntax-check"\n' >"$headers/dmd_git_commit.h"
files=$(grep -l '__has_include(<cuda_runtime_api.h>)' harness/*/*.cpp bench/*.cpp models/*.cpp)
for f in $files; do
  c++ -std=c++17 -fsyntax-only -Wall -Wextra -Werror -D_GLIBCXX_USE_CXX11_ABI=1 -I. -I"$headers" \
    -isystem /usr/include/torch/csrc/api/include -isystem "$cuda/include" "$f"
  grep -q 'DMDBENCH_HAVE_CUDA' "$f" && echo "check-cuda-syntax: $f compiles with its CUDA path"
done
