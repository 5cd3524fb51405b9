#!/usr/bin/env bash
# Installs what is missing, then configures and builds dmdbench (Release) into ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
