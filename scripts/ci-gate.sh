#!/usr/bin/env bash
# The regression gate: the smoke ablation (every variant, two seeds, synthetic MOSI, the default robustness grid:
# the three modality drops and missing:all at 0.3/0.6/0.9) into a fresh database, `regress` against the committed
# baseline (clean metrics and the robustness measures), then the report. CPU runs are deterministic, so the baseline is tight.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/ci-gate}
rm -rf "$out" && mkdir -p "$out"
build/dmdbench run-ablation --profile smoke --seeds 1111,1112 --robustness default --db "$out/smoke.sqlite" --report "$out/report.md"
build/dmdbench regress --db "$out/smoke.sqlite" --baseline tests/baselines/smoke-synthetic-mosi.json
echo "gate passed; report: $out/report.md"
