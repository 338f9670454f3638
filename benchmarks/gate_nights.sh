#!/usr/bin/env bash
# The paired gate measured on this machine: A/A nights (the quickstart's files beside themselves) and nights whose
# candidate is a slowdown built as a file (benchmarks/slowdown.py), each a `bench run --reference` of the quickstart's
# l1-int8 and l1-fp32 on OpenVINO and ONNX Runtime at batch 1, into its own store; then `bench gate validate --paired`
# prints the A/A false-alarm rate and the measured detection with Clopper-Pearson intervals.
#
#   benchmarks/gate_nights.sh ARTIFACTS_DIR [AA_NIGHTS] [SLOW_NIGHTS] [EXTRA_MMACS]
#
# ARTIFACTS_DIR holds the variant directories (`make bench` writes them under .bench-cache/artifacts/<key>/).
# Environment: ROUNDS (pairs per cell, default 20), BENCH (default .venv/bin/bench), OUT (default runs/gate-nights).
set -euo pipefail
ART=${1:?ARTIFACTS_DIR (with l1-int8/ and l1-fp32/)}
AA=${2:-6}
SLOW=${3:-6}
MMACS=${4:-0.25}
ROUNDS=${ROUNDS:-20}
BENCH=${BENCH:-.venv/bin/bench}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gate-nights}
STORE="sqlite:///$PWD/$OUT/nights.sqlite"
mkdir -p "$OUT/ref" "$OUT/slow"
for v in l1-int8 l1-fp32; do
    [ -d "$OUT/ref/$v" ] || cp -r "$ART/$v" "$OUT/ref/$v"
    if [ ! -d "$OUT/slow/$v" ]; then
        $PY benchmarks/slowdown.py "$ART/$v" "$OUT/slow-$v.onnx" --extra-mmacs "$MMACS"
        $BENCH --quiet import "$OUT/slow-$v.onnx" --out "$OUT/slow/$v" --name "$v"
    fi
done
common=(--quiet run --no-report --backend openvino --backend onnxruntime --reference "$OUT/ref"
        --set "store.url=$STORE" --set 'benchmark.batch_sizes=[1]' --set "benchmark.rounds=$ROUNDS"
        --set benchmark.accuracy=false --set benchmark.roofline=false)
slowed=()
night() {  # $1: aa or slow
    local dir="$OUT/ref"
    [ "$1" = slow ] && dir="$OUT/slow"
    $BENCH "${common[@]}" --artifact "$dir/l1-int8" --artifact "$dir/l1-fp32" --json-out "$OUT/last.json"
    local id
    id=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$OUT/last.json")
    echo "$1 $id $(date -u +%H:%M:%S)" >> "$OUT/nights.txt"
    [ "$1" = slow ] && slowed+=(--slowed "$id=1.10")
    $BENCH --quiet compare --paired "$id" --store "$STORE" --allow-inconclusive | tail -n 12 || true
}
# interleave the kinds of night, so a slow hour of the host does not fall on one kind only
for i in $(seq 1 "$(( AA > SLOW ? AA : SLOW ))"); do
    [ "$i" -le "$AA" ] && night aa
    [ "$i" -le "$SLOW" ] && night slow
done
$BENCH gate validate latest --store "$STORE" --paired "${slowed[@]}"
