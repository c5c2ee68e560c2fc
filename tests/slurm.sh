#!/usr/bin/env bash
# A real Slurm on this machine: starts munged, slurmctld and slurmd on localhost, submits the job
# array that `makemore sweep --emit slurm` writes for a tiny grid, and checks that every trial
# finished exactly once and that `makemore report` lists them all.
#
# Needs Debian's slurm-wlm and munge; installs them when run as root with apt-get, and skips,
# saying why, only where they cannot be installed (under CI=true that is a failure). Run from
# anywhere: bash tests/slurm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
# The caller's settings must not reach the binary: a MAKEMORE_* variable changes every command,
# and SLURM_* from a job this runs inside would be taken for this test's.
for variable in $(compgen -e | grep -E '^(MAKEMORE_|SLURM_|RAYON_NUM_THREADS$)' || true); do
    unset "$variable"
done
started=$(date +%s)

# A skip is only for a developer's machine: under CI (CI=true) it would hide the test, so it fails.
skip() {
    if [ "${CI:-}" = true ]; then
        echo "slurm test: FAILED: cannot run under CI: $*" >&2
        exit 1
    fi
    echo "slurm test: SKIPPED: $*"
    exit 0
}
fail() {
    echo "slurm test: FAILED: $*" >&2
    exit 1
}

# slurmd starts jobs as their users, so it runs as root; so does the install.
[ "$(id -u)" = 0 ] || skip "starting slurmd (and installing slurm-wlm and munge) needs root"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null ||
        skip "slurm-wlm and munge are not installed, and there is no apt-get to install them"
    echo "slurm test: installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 &&
            apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1; } ||
        skip "apt-get could not install slurm-wlm and munge"
fi

# Always the binary of this checkout, built as the test suite builds it (with the dev-dependencies'
# features, which `cargo build` would resolve otherwise and rebuild for minutes): after `cargo test
# --release` this is a no-op, and cargo rebuilds it if the sources changed since.
cargo test --release --no-run --quiet
makemore="$repo/target/release/makemore"

work=$(mktemp -d)
export SLURM_CONF="$work/slurm.conf"
munged_pid=""
cleanup() {
    local pids=""
    for daemon in slurmctld slurmd; do
        pids="$pids $(cat "$work/$daemon.pid" 2>/dev/null || true)"
    done
    [ -n "$munged_pid" ] && pids="$pids $munged_pid"
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    for _ in $(seq 20); do
        alive=""
        for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && break
        sleep 0.5
    done
    rm -rf "$work"
}
trap cleanup EXIT

# munge: the package makes a key; a minimal install may not have.
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chmod 400 /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    mkdir -p /run/munge "$work/munge"
    chown munge:munge /run/munge 2>/dev/null || true
    munged --force --socket=/run/munge/munge.socket.2 \
        --pid-file="$work/munge/munged.pid" --log-file="$work/munge/munged.log"
    sleep 1
    munged_pid=$(cat "$work/munge/munged.pid")
    munge -n | unmunge >/dev/null || fail "munged does not answer; see $work/munge/munged.log"
fi

node=$(hostname -s)
mkdir -p "$work/state" "$work/spool"
cat >"$SLURM_CONF" <<EOF
ClusterName=makemore-ci
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort=6917
SlurmdPort=6918
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$node CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start"
for _ in $(seq 30); do
    sinfo -h -o %t 2>/dev/null | grep -q idle && break
    sleep 1
done
sinfo -h -o %t | grep -q idle || fail "the node never became idle: $(tail -3 "$work/slurmd.log")"

# A tiny grid: 2 learning rates x 2 seeds of a small bag-of-words model on 300 names.
head -300 "$repo/data/names.txt" >"$work/names.txt"
cat >"$work/tiny.toml" <<'EOF'
[dataset]
path = "names.txt"
test_size = 30

[model]
type = "bow"
n_embd = 8
n_embd2 = 16

[schedule]
steps = 40
batch_size = 8
eval_every = 20

[sampling]
count = 2
EOF
cat >"$work/grid.toml" <<'EOF'
name = "slurm-ci"
experiment = "tiny.toml"

[grid]
"schedule.learning_rate" = [1e-3, 3e-3]
seed = [1, 2]
EOF

"$makemore" sweep "$work/grid.toml" --runs "$work/runs" --emit slurm \
    --time 0:10:00 --cpus-per-task 1 --mem 500M --max-parallel 2 >/dev/null
sweep="$work/runs/slurm-ci"
sbatch --wait --quiet "$sweep/sweep.sbatch" || fail "the job array failed: $(cat "$sweep"/logs/*.out 2>/dev/null | tail -5)"

# Every trial done, each started exactly once (one run header, no resume) in its own run dir.
trials=$(tail -n +2 "$sweep/trials.csv" | wc -l)
[ "$trials" = 4 ] || fail "trials.csv has $trials trials, not 4"
done_count=$(tail -n +2 "$sweep/trials.csv" | cut -d, -f3 | grep -cx done || true)
[ "$done_count" = 4 ] || fail "$done_count of 4 trials are done: $(cat "$sweep/trials.csv")"
for id in $(tail -n +2 "$sweep/trials.csv" | cut -d, -f2); do
    starts=$(grep -c "bow model" "$sweep/$id/train.log" || true)
    resumes=$(grep -c "resuming" "$sweep/$id/train.log" || true)
    [ "$starts" = 1 ] && [ "$resumes" = 0 ] ||
        fail "trial $id started $starts time(s) and resumed $resumes time(s)"
done
outputs=$(find "$sweep" -name '*_*.out' | wc -l)
[ "$outputs" = 4 ] || fail "Slurm ran $outputs array tasks, not 4"

# The report: one row per learning rate, each the mean of its 2 seeds.
report=$("$makemore" report "$sweep" --format csv)
rows=$(echo "$report" | tail -n +2 | wc -l)
[ "$rows" = 2 ] || fail "the report has $rows rows, not 2:\n$report"
runs_column=$(echo "$report" | head -1 | tr , '\n' | grep -nx runs | cut -d: -f1)
pooled=$(echo "$report" | tail -n +2 | cut -d, -f"$runs_column" | sort -u)
[ "$pooled" = 2 ] || fail "the report does not pool 2 seeds per row:\n$report"

echo "$report" | cut -d, -f1-8

# A halving search as a job array: 4 learning rates, eta 2, rungs of 20, 40 and 80 steps. Each
# task is a worker that goes on with whatever the current rung needs until the search is done;
# two at a time (%2), the later tasks find it done. The same search run here must agree trial
# for trial: the same steps, the same losses.
cat >"$work/search.toml" <<'EOF'
name = "slurm-halving"
experiment = "tiny.toml"

[set]
"dataset.val_fraction" = 0.1

[grid]
"schedule.learning_rate" = [3e-4, 1e-3, 3e-3, 1e-2]

[search]
method = "halving"
eta = 2
min_steps = 20
max_steps = 80
EOF
"$makemore" sweep "$work/search.toml" --runs "$work/runs" --emit slurm \
    --time 0:10:00 --cpus-per-task 1 --mem 500M --max-parallel 2 >/dev/null
search="$work/runs/slurm-halving"
sbatch --wait --quiet "$search/sweep.sbatch" ||
    fail "the halving array failed: $(cat "$search"/slurm/*.out 2>/dev/null | tail -5)"
"$makemore" sweep "$work/search.toml" --runs "$work/local" -j 2 >"$work/local.out" ||
    fail "the local search failed: $(tail -5 "$work/local.out")"
steps=""
for id in $(tail -n +2 "$search/trials.csv" | cut -d, -f2); do
    a=$(cut -d, -f1-4 "$search/$id/metrics.csv" | md5sum)
    b=$(cut -d, -f1-4 "$work/local/slurm-halving/$id/metrics.csv" | md5sum)
    [ "$a" = "$b" ] || fail "trial $id: its losses under Slurm differ from the local search's"
    steps="$steps $(grep -o '"step": *[0-9]*' "$search/$id/summary.json" | grep -o '[0-9]*$')"
done
sorted=$(echo $steps | tr ' ' '\n' | sort -n | tr '\n' ' ')
[ "$sorted" = "20 20 40 80 " ] || fail "the trials trained to $sorted steps, not 20 20 40 80"
grep -A20 "rung 0" "$work/local.out"

echo "slurm test: passed in $(($(date +%s) - started)) s (a grid and a halving search as job arrays on Slurm $(sinfo -V | cut -d' ' -f2))"
