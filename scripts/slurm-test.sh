#!/usr/bin/env bash
# Starts a throwaway single-node Slurm cluster (slurmctld + slurmd + munged, all on
# 127.0.0.1) on this Debian 12 machine, runs a command with it up, then tears it down.
#
#   scripts/slurm-test.sh                      # built-in self-check (3-task array job)
#   scripts/slurm-test.sh -- ctest -L slurm    # run a command with the cluster up
#   KEEP_SLURM_TMP=1 scripts/slurm-test.sh -- bash   # keep conf/logs/state afterwards
#
# The command sees SLURM_CONF (the generated slurm.conf) and SLURM_TEST_DIR (the
# temporary folder holding conf, logs, state and spool); its exit code is returned.
# Needs root. Installs slurmctld, slurmd, slurm-client and munge with apt-get if missing.
#
# Environment knobs:
#   KEEP_SLURM_TMP=1            keep the temporary folder (its path is printed)
#   SLURM_TEST_STARTUP_S=30     how long to wait for the node to become idle
#   SLURM_TEST_CTLD_PORT=6817   slurmctld port; SLURM_TEST_SLURMD_PORT=6818 slurmd port
#   SLURM_TEST_EXTRA_CONF=...   lines appended to slurm.conf (later keys override earlier)
#   SLURM_TEST_LOCK=/tmp/dmdbench-slurm-test.lock  runs wait for each other on this lock
#   SLURM_TEST_QUIET=1          less chatter on stderr
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

log() { [[ "${SLURM_TEST_QUIET:-0}" == 1 ]] || echo "slurm-test: $*" >&2; }
die() { echo "slurm-test: ERROR: $*" >&2; exit 1; }

CMD=()
while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --) shift; CMD=("$@"); break ;;
    *) echo "slurm-test: unknown argument '$1' (put the command after --)" >&2; usage >&2; exit 2 ;;
  esac
done

[[ $(id -u) == 0 ]] || die "must run as root (slurmd and munged are started here)"
export PATH="/usr/sbin:/sbin:$PATH"

# ---------------------------------------------------------------- install
install_packages() {
  local missing=0 b
  for b in slurmctld slurmd sbatch squeue scontrol sinfo munged munge; do
    command -v "$b" >/dev/null 2>&1 || missing=1
  done
  ((missing)) || return 0
  log "installing slurmctld slurmd slurm-client munge with apt-get"
  local prc=/usr/sbin/policy-rc.d prc_backup="" prc_created=0
  if [[ ! -e $prc ]]; then
    printf '#!/bin/sh\n# written by dmdbench scripts/slurm-test.sh: start no daemons during install\nexit 101\n' >"$prc"
    chmod 755 "$prc"; prc_created=1
  elif ! { sh "$prc" x start >/dev/null 2>&1; [[ $? == 101 ]]; }; then
    # An existing policy that allows starts: swap ours in, put theirs back afterwards.
    prc_backup=$(mktemp); cp -p "$prc" "$prc_backup"
    printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod 755 "$prc"
  fi
  local rc=0 pkgs=(slurmctld slurmd slurm-client munge)
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2 ||
    { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2; } || rc=$?
  if ((prc_created)); then rm -f "$prc"; fi
  if [[ -n $prc_backup ]]; then cp -p "$prc_backup" "$prc"; rm -f "$prc_backup"; fi
  ((rc == 0)) || die "apt-get install failed (rc=$rc)"
}
install_packages

# ---------------------------------------------------------------- one cluster at a time
# Fixed ports and the shared munged mean two clusters cannot run at once, so a second
# invocation (ctest -j) waits here. Children get fd 9 closed, so only this script holds it.
LOCK=${SLURM_TEST_LOCK:-/tmp/dmdbench-slurm-test.lock}
exec 9>>"$LOCK"
if ! flock -n 9; then
  log "waiting for another slurm-test run (lock $LOCK)"
  flock -w "${SLURM_TEST_LOCK_WAIT_S:-900}" 9 || die "timed out waiting for lock $LOCK"
fi

# ---------------------------------------------------------------- state + teardown
T=$(mktemp -d -t slurm-test.XXXXXX)
chmod 755 "$T"
export SLURM_TEST_DIR=$T
export SLURM_CONF=$T/slurm.conf
CTLD_PID="" SLURMD_PID="" MUNGED_PID="" CMD_PID=""
SELF_PIDS=" $$ $BASHPID "

# Processes that inherited our SLURM_CONF (slurmstepd, job scripts and their children,
# things the command left behind) are found through /proc/PID/environ, never by name.
our_procs() {
  local e p
  for e in /proc/[0-9]*/environ; do
    p=${e#/proc/}; p=${p%/environ}
    [[ "$SELF_PIDS $CTLD_PID $SLURMD_PID $MUNGED_PID " == *" $p "* ]] && continue
    if { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -qxF "SLURM_CONF=$SLURM_CONF"; then echo "$p"; fi
  done
}

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

wait_gone() { # wait_gone SECONDS PID...
  local deadline=$((SECONDS + $1)) p any; shift
  while ((SECONDS < deadline)); do
    any=0; for p in "$@"; do alive "$p" && any=1; done
    ((any)) || return 0
    sleep 0.2
  done
  return 1
}

print_logs() {
  local f
  for f in "$T"/slurmctld.log "$T"/slurmd.log "$T"/slurmctld.out "$T"/slurmd.out "$T"/munge/munged.log; do
    [[ -s $f ]] || continue
    echo "----- $f (last 60 lines)" >&2; tail -n 60 "$f" >&2
  done
}

cleanup() {
  local rc=$? p left
  set +e
  trap - EXIT
  trap '' INT TERM HUP # teardown is bounded (about 40 s at worst); let it finish
  if alive "$CTLD_PID"; then
    # Jobs survive a daemon shutdown (slurmstepd keeps running), so cancel them first.
    timeout 10 scancel --quiet --user=root >/dev/null 2>&1
    for _ in $(seq 50); do
      [[ -z $(timeout 5 squeue -h -o %i 2>/dev/null) ]] && break; sleep 0.2
    done
    timeout 10 scontrol shutdown >/dev/null 2>&1
  fi
  if alive "$CMD_PID"; then
    kill -TERM "$CMD_PID" 2>/dev/null; wait_gone 5 "$CMD_PID" || kill -KILL "$CMD_PID" 2>/dev/null
  fi
  wait_gone 15 $CTLD_PID $SLURMD_PID
  for p in $CTLD_PID $SLURMD_PID; do alive "$p" && { log "killing leftover daemon $p"; kill -TERM "$p"; }; done
  wait_gone 5 $CTLD_PID $SLURMD_PID || for p in $CTLD_PID $SLURMD_PID; do alive "$p" && kill -KILL "$p"; done
  # proctrack/linuxproc loses children that outlive their batch shell (they are
  # reparented to PID 1 and never get the SIGKILL), so sweep for them here.
  left=$(our_procs)
  if [[ -n $left ]]; then
    local desc
    desc=$(ps -o pid=,args= -p "${left//$'\n'/,}" 2>/dev/null | cut -c1-100 | tr -s ' ' ' ' | paste -sd';' -)
    [[ -z $desc ]] || log "killing leftover job processes: $desc"
    kill -TERM $left 2>/dev/null; sleep 1
    left=$(our_procs); [[ -z $left ]] || kill -KILL $left 2>/dev/null
  fi
  if alive "$MUNGED_PID"; then
    kill -TERM "$MUNGED_PID"; wait_gone 5 "$MUNGED_PID" || kill -KILL "$MUNGED_PID"
  fi
  wait 2>/dev/null
  if [[ ${KEEP_SLURM_TMP:-0} == 1 ]]; then
    log "kept $T"
  else
    rm -rf "$T"
  fi
  exit "$rc"
}
trap cleanup EXIT
# A signal ends the command (if running) and then the script, which runs cleanup.
on_signal() {
  if alive "$CMD_PID"; then kill -"$1" "$CMD_PID" 2>/dev/null; fi
  exit "$2"
}
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

# ---------------------------------------------------------------- munge
start_munge() {
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 0700 /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  if [[ ! -d /run/munge ]]; then install -d -o munge -g munge -m 0755 /run/munge; fi
  [[ $(stat -c %U /run/munge) == munge ]] || chown munge:munge /run/munge
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "reusing the munged already running (it is left running)"
    return 0
  fi
  rm -f /run/munge/munged.pid
  install -d -o munge -g munge -m 0700 "$T/munge"
  runuser -u munge -- munged --log-file="$T/munge/munged.log" 9>&- ||
    { print_logs; die "munged failed to start"; }
  MUNGED_PID=$(cat /run/munge/munged.pid 2>/dev/null || true)
  local _
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  print_logs; die "munged does not answer (munge -n | unmunge fails)"
}

# ---------------------------------------------------------------- slurm.conf
write_conf() {
  local node nodeline
  node=$(hostname -s)
  # slurmd -C prints "NodeName=... CPUs=... RealMemory=..." and then "UpTime=..."; keep
  # the first line, force NodeName to our short host name and add the loopback address.
  nodeline=$(slurmd -C | head -n1 | sed -E "s/^NodeName=[^ ]+/NodeName=$node NodeAddr=127.0.0.1/")
  [[ $nodeline == NodeName=* ]] || die "unexpected 'slurmd -C' output: $nodeline"
  mkdir -p "$T/state" "$T/spool"
  cat >"$SLURM_CONF" <<EOF
# generated by scripts/slurm-test.sh
ClusterName=dmdtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=${SLURM_TEST_CTLD_PORT:-6817}
SlurmdPort=${SLURM_TEST_SLURMD_PORT:-6818}
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
SlurmdUser=root
MailProg=/bin/true
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ReturnToService=2
MinJobAge=3600
KillWait=5
InactiveLimit=0
Waittime=0
# Start queued batch jobs as soon as CPUs free up (default delay made 6 trivial array
# tasks take 3-9 s instead of 2-3 s here).
SchedulerParameters=batch_sched_delay=0
$nodeline State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  if [[ -n ${SLURM_TEST_EXTRA_CONF:-} ]]; then printf '%s\n' "$SLURM_TEST_EXTRA_CONF" >>"$SLURM_CONF"; fi
  NODE=$node
}

# ---------------------------------------------------------------- start
t0=$SECONDS
start_munge
write_conf
slurmctld -D -i -f "$SLURM_CONF" >"$T/slurmctld.out" 2>&1 9>&- &
CTLD_PID=$!
slurmd -D -N "$NODE" -f "$SLURM_CONF" >"$T/slurmd.out" 2>&1 9>&- &
SLURMD_PID=$!
deadline=$((SECONDS + ${SLURM_TEST_STARTUP_S:-30}))
state=""
while :; do
  state=$(timeout 5 sinfo -h -o %t 2>/dev/null || true)
  [[ $state == idle ]] && break
  if ! alive "$CTLD_PID" || ! alive "$SLURMD_PID" || ((SECONDS >= deadline)); then
    echo "slurm-test: cluster did not come up (sinfo state: '${state:-none}'," \
      "slurmctld $(alive "$CTLD_PID" && echo up || echo dead), slurmd $(alive "$SLURMD_PID" && echo up || echo dead))" >&2
    print_logs
    exit 1
  fi
  sleep 0.2
done
log "cluster up in $((SECONDS - t0)) s: node $NODE idle, SLURM_CONF=$SLURM_CONF"

# ---------------------------------------------------------------- command or self-check
self_check() {
  local d=$T/selfcheck jobid recs n
  mkdir -p "$d"
  cat >"$d/task.sh" <<'EOF'
#!/bin/bash
echo "task=$SLURM_ARRAY_TASK_ID job=$SLURM_ARRAY_JOB_ID node=$SLURMD_NODENAME" >"$OUTDIR/out.$SLURM_ARRAY_TASK_ID"
EOF
  jobid=$(OUTDIR=$d sbatch --parsable --array=0-2 --time=2 --job-name=selfcheck \
    --chdir="$d" --output="$d/slurm-%A_%a.out" "$d/task.sh")
  log "self-check: submitted array job $jobid"
  local deadline=$((SECONDS + 60))
  while [[ -n $(squeue -h -j "$jobid" -o %i 2>/dev/null) ]]; do
    ((SECONDS < deadline)) || { squeue -j "$jobid" >&2; print_logs; die "self-check: job $jobid not done in 60 s"; }
    sleep 0.5
  done
  recs=$(scontrol -o show job "$jobid")
  n=$(grep -c 'JobState=COMPLETED .*ExitCode=0:0' <<<"$recs" || true)
  if [[ $n != 3 ]] || [[ ! -s $d/out.0 || ! -s $d/out.1 || ! -s $d/out.2 ]]; then
    echo "$recs" >&2; ls -l "$d" >&2; print_logs
    die "self-check failed: $n of 3 tasks COMPLETED with ExitCode=0:0"
  fi
  cat "$d"/out.* >&2
  echo "slurm-test: self-check passed (array job $jobid: 3 tasks COMPLETED, ExitCode=0:0)"
}

if ((${#CMD[@]})); then
  # In the background (stdin kept) so that a signal to this script is handled at once.
  "${CMD[@]}" <&0 9>&- &
  CMD_PID=$!
  rc=0
  wait "$CMD_PID" || rc=$?
  CMD_PID=""
  exit "$rc"
else
  self_check
fi
