#!/usr/bin/env bash
# The test command: installs and builds what it needs, then runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd build
ctest --output-on-failure -j "$(nproc)" "$@"
