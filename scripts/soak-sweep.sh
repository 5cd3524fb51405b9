#!/usr/bin/env bash
# The sweep's crash soak: N cycles of a small run-ablation that is killed with SIGKILL at a random moment (its
# parent, or one of its workers) and rerun at once to the end. Counts, over all cycles, the runs not COMPLETED
# after the rerun (lost), the runs with duplicate epoch or metric rows, and the reruns that exited non-zero; all
# must be 0, as must the processes of a cycle still alive after its rerun. Prints one line per cycle and a summary.
#
#   scripts/soak-sweep.sh [CYCLES=100] [BUILD=build]
set -uo pipefail
cd "$(dirname "$0")/.."
cycles=${1:-100}
dmd=${2:-build}/dmdbench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(run-ablation --variants dmd,mult,no-distill --seeds 1111,1112 --profile smoke --dataset synthetic-mosi@0.02
      --set max_epochs=2 --no-report --jobs 2)
lost=0 duplicated=0 failed_reruns=0 orphans=0
for ((i = 1; i <= cycles; i++)); do
  db="$work/c$i.sqlite"
  "$dmd" "${args[@]}" --db "$db" >"$work/first.log" 2>&1 &
  parent=$!
  sleep "$(awk -v s=$RANDOM 'BEGIN { printf "%.2f", 0.3 + (s % 400) / 100 }')"
  target=$parent what=parent
  if ((RANDOM % 2)); then
    worker=$(pgrep -P "$parent" | shuf -n 1)
    [ -n "$worker" ] && target=$worker what=worker
  fi
  kill -9 "$target" 2>/dev/null
  [ "$what" = worker ] && wait "$parent" 2>/dev/null
  [ "$what" = parent ] && wait "$parent" 2>/dev/null
  "$dmd" "${args[@]}" --db "$db" >"$work/rerun.log" 2>&1
  rc=$?
  not_done=$(sqlite3 "$db" "SELECT count(*) FROM run WHERE status <> 'COMPLETED'")
  runs=$(sqlite3 "$db" "SELECT count(*) FROM run")
  dups=$(sqlite3 "$db" "SELECT count(*) FROM (SELECT run_id FROM epoch GROUP BY run_id HAVING count(*) <> max(epoch)
                        UNION ALL SELECT run_id FROM metric WHERE split = 'test' GROUP BY run_id, name HAVING count(*) > 1)")
  missing=$((6 - runs + not_done))
  lost=$((lost + missing)) duplicated=$((duplicated + dups))
  ((rc != 0)) && failed_reruns=$((failed_reruns + 1))
  echo "cycle $i: killed the $what, rerun exit $rc, runs completed $((runs - not_done))/6, duplicates $dups"
  ((rc != 0)) && tail -5 "$work/rerun.log"
  left=$(pgrep -f "$db" | wc -l)  # nothing of this cycle may outlive it
  orphans=$((orphans + left))
  ((left > 0)) && pkill -9 -f "$db"
done
echo "soak: $cycles cycles, lost runs $lost, runs with duplicate rows $duplicated, reruns with a non-zero exit" \
  "$failed_reruns, processes left over $orphans"
[ $((lost + duplicated + failed_reruns + orphans)) -eq 0 ]
