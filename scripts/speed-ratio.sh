#!/usr/bin/env bash
# dmdbench's DMD step against the Python reference's on this machine, measured alternately in one run:
# ours, reference, ours, reference, ... (MOSI, then MOSEI, each round), best of each side; training step and
# evaluation. The reference is mdswyz/DMD run by ../shared/tools/reference_step.py with Debian's python3-torch
# (PyTorch 1.13 + OpenBLAS): same batch, full loss, Adam, value clipping, three untimed warm-up steps.
# Ours: `dmdbench bench` cases train_step/dmd/<family>/batch:B/threads:T and eval/..., median of 3 repetitions
# (three untimed warm-up steps too).
# Usage: scripts/speed-ratio.sh REFERENCE_DIR [ROUNDS=2] [BATCH=16] [THREADS=1]
#   REFERENCE_DIR: a work tree of github.com/mdswyz/DMD (the reference's code; nothing of it is built).
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:?usage: scripts/speed-ratio.sh REFERENCE_DIR [ROUNDS] [BATCH] [THREADS]}
rounds=${2:-2}
batch=${3:-16}
threads=${4:-1}
tool=${REFERENCE_STEP:-../shared/tools/reference_step.py}
[ -d "$ref" ] || { echo "speed-ratio: no reference work tree at $ref" >&2; exit 2; }
[ -f "$tool" ] || { echo "speed-ratio: no $tool (the shared reference_step.py)" >&2; exit 2; }
/usr/bin/python3 -c 'import torch, tqdm, sklearn' 2>/dev/null ||
  { echo "speed-ratio: the reference needs Debian's python3-torch, python3-tqdm and python3-sklearn (apt-get install python3-torch python3-tqdm python3-sklearn)" >&2; exit 2; }
[ -x build/dmdbench ] || { echo "speed-ratio: build/dmdbench is missing; build first (scripts/build.sh)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for round in $(seq "$rounds"); do
  for fam in mosi mosei; do
    build/dmdbench bench --filter "^(eval|train_step)/dmd/$fam/batch:$batch/threads:$threads\$" --repetitions 3 \
      --db "$work/ours.sqlite" >/dev/null
    sqlite3 -separator ' ' "$work/ours.sqlite" \
      "SELECT 'dmdbench', '$fam', CASE WHEN name LIKE 'train_step/%' THEN 'train' ELSE 'eval' END,
              printf('%.1f', $batch * 1e9 / median_ns)
       FROM bench WHERE bench_set = (SELECT bench_set FROM bench ORDER BY rowid DESC LIMIT 1)" >>"$work/samples"
    # The reference runs on the same OpenBLAS kernels: where dmdbench asked for them (models/blas_core.h), so
    # does the reference.
    core=$(sqlite3 "$work/ours.sqlite" "SELECT determinism_flags FROM bench ORDER BY rowid DESC LIMIT 1" |
      sed -n 's/.*openblas=\([A-Za-z0-9]*\)(OPENBLAS_CORETYPE).*/\1/p')
    line=$(env ${core:+OPENBLAS_CORETYPE=$core} OMP_NUM_THREADS=$threads /usr/bin/python3 "$tool" "$ref" "$fam" "$batch" 20 "$threads" 2>"$work/reference.err" | tail -1) || true
    train=$(sed -n 's/.*train \([0-9.]*\) samples.*/\1/p' <<<"$line")
    eval=$(sed -n 's/.*eval \([0-9.]*\) samples.*/\1/p' <<<"$line")
    [ -n "$train" ] && [ -n "$eval" ] || { echo "speed-ratio: the reference step gave no samples/s; it printed: ${line:-nothing} $(tail -1 "$work/reference.err")" >&2; exit 1; }
    echo "reference $fam train $train" >>"$work/samples"
    echo "reference $fam eval $eval" >>"$work/samples"
    echo "round $round $fam: $(grep -c . "$work/samples") measurements" >&2
  done
done
echo "batch $batch, $threads thread(s), $rounds rounds alternating; samples/s per round, best of each side"
echo "| case | reference | dmdbench | ratio |"
echo "|---|---|---|---|"
awk '{ key = $2 " " $3; v[$1, key] = v[$1, key] (v[$1, key] == "" ? "" : ", ") $4;
       if ($4 > best[$1, key]) best[$1, key] = $4; keys[key] = 1 }
     END { for (k in keys) printf "| %s | %s (best %s) | %s (best %s) | %.2fx |\n", k, v["reference", k],
           best["reference", k], v["dmdbench", k], best["dmdbench", k], best["dmdbench", k] / best["reference", k] }' \
  "$work/samples" | sort
