#!/usr/bin/env bash
# One script for a GPU host: build (Release, ninja, all cores) against the CUDA LibTorch of the installed PyTorch,
# run the unit tests, the smoke ablation for every variant and two seeds on CUDA (on the text features, then with a
# small random BERT fine-tuned as the text encoder), the benchmarks with CUDA cases (dmd-bert: bert-base-uncased's
# shape), and write the database, the report and a summary into OUT. Needs deps/prefix from scripts/fetch-gpu-deps.sh when
# the host has no Debian packages.
#
#   scripts/gpu-run.sh OUT [--device cuda|cpu] [--skip-build] [--skip-tests] [--seeds 1111,1112] [--bench-filter REGEX]
#
# `--device cpu` is the dry run that CI does: the same steps on the CPU build (./build), nothing CUDA-specific.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu-run.sh OUT [--device cuda|cpu] [--skip-build] [--skip-tests] [--seeds S] [--bench-filter REGEX]}
shift
device=cuda skip_build=0 skip_tests=0 seeds=1111,1112 filter='(eval|train_step)/(dmd|mult|dmd-bert)/mosi/batch:(16|64)/threads:1$'
while (($#)); do
  case $1 in
    --device) device=$2; shift 2 ;;
    --skip-build) skip_build=1; shift ;;
    --skip-tests) skip_tests=1; shift ;;
    --seeds) seeds=$2; shift 2 ;;
    --bench-filter) filter=$2; shift 2 ;;
    *) echo "gpu-run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
start=$(date +%s)
step() { echo "== $(( $(date +%s) - start ))s: $*"; }

if [ "$device" = cpu ]; then
  build=build
  [ "$skip_build" = 1 ] || scripts/build.sh
else
  build=build-gpu
  prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  [ -d deps/prefix ] && prefix="$prefix;$PWD/deps/prefix/usr" && export LD_LIBRARY_PATH="$PWD/deps/prefix/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  if [ "$skip_build" = 0 ]; then
    step "configure and build against $(python3 -c 'import torch;print(torch.__version__)')"
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" >"$out/configure.log"
    cmake --build "$build" -j "$(nproc)" >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
  fi
fi
dmd="$build/dmdbench"

if [ "$skip_tests" = 0 ]; then
  step "unit tests"
  (cd "$build" && ctest -j "$(nproc)" --output-on-failure >"$out/ctest.log" 2>&1) || { tail -40 "$out/ctest.log"; exit 1; }
  tail -3 "$out/ctest.log"
fi

# Execution options on the full DMD variant, same seeds: CUDA graph, bf16 autocast, both. The CPU dry run does
# bf16 only, on 2% of the data for one epoch: CUDA graphs need a GPU, and LibTorch's bf16 matrix products on a CPU
# without bf16 instructions run at ~2 samples/s.
options=("autocast=bf16 synthetic_scale=0.02 max_epochs=1")
[ "$device" = cpu ] || options=("cuda_graph=true" "autocast=bf16" "cuda_graph=true autocast=bf16")
for opt in "${options[@]}"; do
  sets=()
  for kv in $opt; do sets+=(--set "$kv"); done
  step "smoke dmd on $device with $opt"
  "$dmd" run-ablation --profile smoke --device "$device" --variants dmd --seeds "$seeds" --db "$out/gpu.sqlite" \
    --jobs 1 --report "$out/options/${opt// /_}.md" "${sets[@]}" | tail -4
done

step "smoke ablation on $device: every variant, seeds $seeds"
"$dmd" run-ablation --profile smoke --device "$device" --seeds "$seeds" --db "$out/gpu.sqlite" \
  --report "$out/report.md" --jobs 1 | tail -25

# The BERT path (spec §1.2): a random BERT from the committed smoke config, fine-tuned inside the one Adam. The
# CPU dry run does full DMD on 5% of the data; the GPU run every variant.
step "smoke ablation with a random BERT on $device"
"$dmd" data random-bert tests/fixtures/bert-smoke/config.json --out "$out/bert-smoke" | tail -1
bert_sets=()
[ "$device" = cpu ] && bert_sets=(--variants dmd --set synthetic_scale=0.05)
"$dmd" run-ablation --profile smoke --device "$device" --seeds "$seeds" --db "$out/gpu.sqlite" --jobs 1 \
  --bert "$out/bert-smoke" --report "$out/bert-smoke.md" "${bert_sets[@]}" | tail -12

step "benchmarks on $device"
"$dmd" bench --device "$device" --filter "$filter" --repetitions 3 --db "$out/gpu.sqlite" | tail -30

step "report"
"$dmd" report --db "$out/gpu.sqlite" --out "$out/report.md" >/dev/null
"$dmd" ls --db "$out/gpu.sqlite" | tail -25
step "eager vs CUDA graph vs bf16: the sweep and the option runs in one report (a row per configuration)"
"$dmd" report --db "$out/gpu.sqlite" --experiment all --out "$out/summary.md" >/dev/null
sed -n '/^### Results/,/^### Difference/p;/^### Throughput/,/^### Figures/p' "$out/summary.md" | grep -v '^### '
step "done: $out/report.md, $out/summary.md"
