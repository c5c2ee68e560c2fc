#!/usr/bin/env bash
# The GPU check, for a machine with a GPU but no Rust toolchain: the release binary built here
# with `cargo build --release --features cuda` does everything. Within 8 minutes from a cold
# kernel cache it measures
#   - the kernel compilation of a first and a second run (is burn's cache kept?),
#   - every family for N steps on the GPU and on the CPU with the same seed, and their agreement,
#   - the default Transformer to 2,000 steps, and its checkpoint sampled on the CPU,
#   - ms/step and tokens/s at batches of 32, 256, 1,024 and 4,096, and a wider Transformer,
# and writes OUT/gpu.json and OUT/gpu.md (a table for BENCHMARKS.md). Each command has a time
# limit and the whole a budget of 7.5 minutes; a command that fails or runs out is recorded as
# such and the rest goes on.
#
#   bash tests/gpu.sh [--binary PATH] [--out DIR] [--backend cuda|cpu] [--quick] [--budget SECONDS]
#
# `--backend cpu --quick` runs the same on the CPU with few steps: the suite does so, to test the
# script where no GPU is.
set -uo pipefail
cd "$(dirname "$0")/.."

binary=target/release/makemore
out=gpu-results
backend=cuda
quick=0
budget=450
usage() {
    echo "usage: bash tests/gpu.sh [--binary PATH] [--out DIR] [--backend cuda|cpu] [--quick] [--budget SECONDS]" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) [ $# -ge 2 ] || usage; binary=$2; shift 2 ;;
        --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
        --backend) [ $# -ge 2 ] || usage; backend=$2; shift 2 ;;
        --quick) quick=1; shift ;;
        --budget) [ $# -ge 2 ] && [ "$2" -ge 0 ] 2>/dev/null || usage; budget=$2; shift 2 ;;
        *) echo "tests/gpu.sh: unknown argument $1" >&2; usage ;;
    esac
done
case "$backend" in cuda | cpu) ;; *) echo "tests/gpu.sh: --backend is cuda or cpu, not $backend" >&2; exit 2 ;; esac
[ -x "$binary" ] || { echo "tests/gpu.sh: no binary at $binary (cargo build --release --features cuda)" >&2; exit 2; }
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")

if [ "$quick" = 1 ]; then
    steps=20; long=50; bench_steps=5; bench_warmup=2; batches="32 256"; limit=120
    bench_models=bigram,transformer
else
    steps=100; long=2000; bench_steps=30; bench_warmup=5; batches="32 256 1024 4096"; limit=120
    bench_models=bigram,mlp,cnn,rnn,gru,lstm,bow,transformer
fi
families="bigram counts mlp cnn rnn gru lstm bow transformer"
mkdir -p "$out"
out=$(cd "$out" && pwd)
runs=$out/runs
log=$out/gpu.log
# A second check into the same folder must not read the first one's runs.
rm -rf "$runs" "$out"/bench-*.json
: > "$log"
unset RAYON_NUM_THREADS
for var in $(env | sed -n 's/^\(MAKEMORE_[A-Z_]*\|SLURM_[A-Z_]*\)=.*/\1/p'); do unset "$var"; done

# The whole check ends within `budget` seconds: a GPU is lent for minutes, and a command that
# compiles kernels for longer than its share is recorded as timed out (rc 124) or, once the
# budget is spent, as skipped (rc 125), so that the files are always written.
deadline=$(( $(date +%s) + budget ))

# Runs "$@" under the time limit; sets `seconds` and `rc`, its output in the log.
timed() {
    local start end left
    start=$(date +%s.%N)
    echo "\$ $*" >> "$log"
    left=$(( deadline - $(date +%s) ))
    if [ "$left" -le 0 ]; then
        echo "skipped: the check's $budget s are spent" >> "$log"
        seconds=0 rc=125
        return
    fi
    timeout "$(( left < limit ? left : limit ))" "$@" >> "$log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
}

# A run of experiments/transformer.toml named $1 on backend $2 for $3 steps, with more --set.
train() {
    local name=$1 on=$2 n=$3
    shift 3
    timed "$binary" run experiments/transformer.toml --runs "$runs" \
        --set "name=\"$name\"" --set "backend.name=\"$on\"" --set "schedule.steps=$n" \
        --set "schedule.eval_every=$n" --set "schedule.sample_every=$n" "$@"
}

# A figure of a run's summary.json ("null" when there is none).
figure() {
    local value
    value=$(sed -n "s/^ *\"$2\": \([-0-9.eE+]*\),*$/\1/p" "$runs/$1/latest/summary.json" 2>/dev/null | head -1)
    echo "${value:-null}"
}

# The largest difference between two runs' losses at their last step.
difference() {
    local a=$runs/$1/latest/metrics.csv b=$runs/$2/latest/metrics.csv
    [ -f "$a" ] && [ -f "$b" ] || { echo null; return; }
    paste -d, "$a" "$b" | awk -F, -v n="$3" '
        NR > 1 && $1 == n { d = $3 - $9; if (d < 0) d = -d; if (d > m) m = d; seen = 1 }
        END { if (seen) printf "%.3g", m; else print "null" }'
}

json=$out/gpu.json
md=$out/gpu.md
{
    echo "{"
    echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"backend\": \"$backend\","
    echo "  \"quick\": $([ "$quick" = 1 ] && echo true || echo false),"
    echo "  \"gpu\": \"$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)\","
} > "$json"

# 1. Kernel compilation: the same short run twice; the second finds the first's kernels if the
#    cache is kept.
train compile-1 "$backend" 10
first=$seconds first_rc=$rc
train compile-2 "$backend" 10
second=$seconds
echo "  \"compile\": {\"first_s\": $first, \"first_rc\": $first_rc, \"second_s\": $second, \"second_rc\": $rc}," >> "$json"

# 2. Every family on the device and on the CPU, the same seed.
echo "  \"families\": [" >> "$json"
echo "| family | $backend s | cpu s | test loss, $backend | test loss, cpu | largest difference at step $steps |" > "$md"
echo "| --- | ---: | ---: | ---: | ---: | ---: |" >> "$md"
separator=""
for family in $families; do
    train "$family-$backend" "$backend" "$steps" --set "model.type=\"$family\""
    device_s=$seconds device_rc=$rc
    train "$family-cpu" cpu "$steps" --set "model.type=\"$family\""
    cpu_s=$seconds
    at=$steps
    [ "$family" = counts ] && at=0
    device_loss=$(figure "$family-$backend" test_loss_last)
    cpu_loss=$(figure "$family-cpu" test_loss_last)
    diff=$(difference "$family-$backend" "$family-cpu" "$at")
    printf '%s    {"model": "%s", "device_s": %s, "device_rc": %s, "cpu_s": %s, "device_test_loss": %s, "cpu_test_loss": %s, "max_difference": %s}' \
        "$separator" "$family" "$device_s" "$device_rc" "$cpu_s" "$device_loss" "$cpu_loss" "$diff" >> "$json"
    separator=$',\n'
    echo "| $family | $device_s | $cpu_s | $device_loss | $cpu_loss | $diff |" >> "$md"
done
printf '\n  ],\n' >> "$json"

# 3. The default Transformer, and its checkpoint sampled on the CPU (sample always is).
train "transformer-long" "$backend" "$long" --set "schedule.eval_every=500"
long_s=$seconds long_rc=$rc
timed "$binary" sample "$runs/transformer-long" -n 5
echo "  \"transformer\": {\"steps\": $long, \"seconds\": $long_s, \"rc\": $long_rc, \"test_loss\": $(figure transformer-long test_loss), \"ms_per_step\": $(figure transformer-long ms_per_step), \"sampled_on_cpu_rc\": $rc}," >> "$json"
{
    echo
    echo "Default Transformer, $long steps on $backend: ${long_s} s, test loss $(figure transformer-long test_loss), $(figure transformer-long ms_per_step) ms/step; sampled on the CPU: exit $rc."
    echo
    echo "A first 10-step run ${first} s, the same again ${second} s (kernel compilation)."
    echo
    echo "| batch | model | ms/step | train tok/s |"
    echo "| ---: | --- | ---: | ---: |"
} >> "$md"

# 4. Speed at growing batches, and a wider Transformer.
echo "  \"bench\": [" >> "$json"
separator=""
bench() {
    local label=$1
    shift
    timed "$binary" bench --steps "$bench_steps" --warmup "$bench_warmup" \
        --set "backend.name=\"$backend\"" --json "$out/bench-$label.json" "$@"
    if [ "$rc" = 0 ] && [ -f "$out/bench-$label.json" ]; then
        printf '%s    {"label": "%s", "report": %s}' "$separator" "$label" "$(cat "$out/bench-$label.json")" >> "$json"
        sed -n 's/.*"model": "\([a-z]*\)".*/\1/p; s/.*"batch_size": \([0-9]*\).*/\1/p; s/.*"ms_per_step_median": \([-0-9.eE+]*\).*/\1/p; s/.*"train_tokens_per_s": \([-0-9.eE+]*\).*/\1/p' \
            "$out/bench-$label.json" | paste - - - - |
            awk -v label="$label" -F'\t' '{ printf "| %s | %s (%s) | %.3f | %.0f |\n", $2, $1, label, $3, $4 }' >> "$md"
    else
        printf '%s    {"label": "%s", "rc": %s}' "$separator" "$label" "$rc" >> "$json"
        echo "| - | $label | failed (exit $rc) | - |" >> "$md"
    fi
    separator=$',\n'
}
for batch in $batches; do
    bench "batch-$batch" --models "$bench_models" --set "schedule.batch_size=$batch"
done
bench wide --models transformer --set "model.n_embd=256" --set "model.n_layer=6" --set "model.n_head=8"
printf '\n  ]\n}\n' >> "$json"
echo "wrote $json and $md (commands and their output: $log)"
