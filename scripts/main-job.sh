#!/usr/bin/env bash
# The main job: installs and builds what it needs, runs the default ablation (every variant and MulT, three seeds,
# quick profile, synthetic MOSI) into results/dmdbench.sqlite, and writes the report, whose path it prints last.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
build/dmdbench run-ablation "$@"
