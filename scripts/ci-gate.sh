#!/usr/bin/env bash
# The regression gate: the smoke ablation (every variant, two seeds, synthetic MOSI) into a fresh database,
# `regress` against the committed baseline, then the report. CPU runs are deterministic, so the baseline is tight.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/ci-gate}
rm -rf "$out" && mkdir -p "$out"
build/dmdbench run-ablation --profile smoke --seeds 1111,1112 --db "$out/smoke.sqlite" --report "$out/report.md"
build/dmdbench regress --db "$out/smoke.sqlite" --baseline tests/baselines/smoke-synthetic-mosi.json
echo "gate passed; report: $out/report.md"
