#!/usr/bin/env bash
# The paired gate measured on this machine: A/A nights (the quickstart's files beside themselves) and nights whose
# candidate is a slowdown built as a file (benchmarks/slowdown.py), each a `bench run --reference` of the quickstart's
# l1-int8 and l1-fp32 on OpenVINO and ONNX Runtime at batch 1, into its own store; then `bench gate validate --paired`
# prints the A/A false-alarm rate and the measured detection with Clopper-Pearson intervals.
#
#   benchmarks/gate_nights.sh ARTIFACTS_DIR AA_NIGHTS [LABEL=MMACS:NIGHTS ...]
#   e.g. benchmarks/gate_nights.sh .bench-cache/artifacts/<key> 6 1.10=0.12:4 1.20=0.25:2
#
# ARTIFACTS_DIR holds the variant directories (`make bench` writes them under .bench-cache/artifacts/<key>/). Each
# LABEL=MMACS:NIGHTS is one slowdown level: MMACS million multiply-accumulates per image added to both variants'
# files, LABEL the factor it is meant to be (`--slowed RUN=LABEL`; measure the real factor: benchmarks/gate_nights.py
# prints it pooled over the nights), NIGHTS how many nights of it. The kinds of night take turns (A/A, then each
# level), so a slow hour of the host does not fall on one kind only.
# Environment: ROUNDS (pairs per cell, default 20), INTERLEAVE (blocks: both arms in one process per pair, the
# default; processes: ABBA processes), VARIANTS (default "l1-int8 l1-fp32": the variant directories timed, e.g.
# VARIANTS=l1-int8 for the full-width model's FPTQ file alone), BENCH (default .venv/bin/bench), OUT (default
# runs/gate-nights).
set -euo pipefail
ART=${1:?ARTIFACTS_DIR (with the VARIANTS directories: l1-int8/ and l1-fp32/)}
AA=${2:-6}
shift 2 || shift $#
LEVELS=("$@")
ROUNDS=${ROUNDS:-20}
INTERLEAVE=${INTERLEAVE:-blocks}
read -r -a VARIANTS <<< "${VARIANTS:-l1-int8 l1-fp32}"
BENCH=${BENCH:-.venv/bin/bench}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gate-nights}
mkdir -p "$OUT"
STORE="sqlite:///$(realpath "$OUT")/nights.sqlite"
mkdir -p "$OUT/ref"
for v in "${VARIANTS[@]}"; do [ -d "$OUT/ref/$v" ] || cp -r "$ART/$v" "$OUT/ref/$v"; done
declare -A todo=([aa]=$AA)
kinds=(aa)
for spec in "${LEVELS[@]}"; do
    label=${spec%%=*} rest=${spec#*=}
    mmacs=${rest%%:*} n=${rest#*:}
    todo[$label]=$n
    kinds+=("$label")
    for v in "${VARIANTS[@]}"; do
        if [ ! -d "$OUT/slow-$label/$v" ]; then
            $PY benchmarks/slowdown.py "$ART/$v" "$OUT/slow-$label-$v.onnx" --extra-mmacs "$mmacs"
            $BENCH --quiet import "$OUT/slow-$label-$v.onnx" --out "$OUT/slow-$label/$v" --name "$v"
        fi
    done
done
common=(--quiet run --no-report --backend openvino --backend onnxruntime --reference "$OUT/ref" --interleave "$INTERLEAVE"
        --set "store.url=$STORE" --set 'benchmark.batch_sizes=[1]' --set "benchmark.rounds=$ROUNDS"
        --set benchmark.accuracy=false --set benchmark.roofline=false)
night() {  # $1: aa or a level's label
    local dir="$OUT/ref" id
    [ "$1" = aa ] || dir="$OUT/slow-$1"
    local arts=() v
    for v in "${VARIANTS[@]}"; do arts+=(--artifact "$dir/$v"); done
    $BENCH "${common[@]}" "${arts[@]}" --json-out "$OUT/last.json"
    id=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$OUT/last.json")
    echo "$1 $id $(date -u +%H:%M:%S)" >> "$OUT/nights.txt"
    $BENCH --quiet compare --paired "$id" --store "$STORE" --allow-inconclusive | tail -n 3 || true
}
left=1
while [ "$left" -gt 0 ]; do
    left=0
    for k in "${kinds[@]}"; do
        if [ "${todo[$k]}" -gt 0 ]; then night "$k"; todo[$k]=$(( todo[$k] - 1 )); fi
        left=$(( left + todo[$k] ))
    done
done
slowed=()
while read -r kind id _; do [ "$kind" = aa ] || slowed+=(--slowed "$id=$kind"); done < "$OUT/nights.txt"
$BENCH gate validate latest --store "$STORE" --paired "${slowed[@]}"
