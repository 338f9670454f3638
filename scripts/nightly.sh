#!/usr/bin/env bash
# Nightly benchmark: run the grid with the nightly profile, store it in the shared history, then gate it
# against the previous runs of the same machine and config (`bench compare --history`), then write the history
# dashboard (`bench report --history`: a static site of every cell with the gate's verdicts; docs/fleet.md).
# Exit 0: every cell tested, no regression (or the first night: nothing to compare yet); 1: a regression;
# 3: no regression but some cell could not be tested (too short a history, a cell missing...); else a failure.
#
# Environment:
#   BENCH_STORE_URL  the shared store (required), e.g. postgresql+psycopg://bench@db.example:5432/bench
#   BENCH_CLUSTER    HOST:PORT of a Ray head: measure on its nodes (with BENCH_TARGETS="edge-a edge-b")
#   BENCH_TARGETS    space-separated hardware targets for BENCH_CLUSTER
#   BENCH_MACHINE_ID name of this machine in the history (default: derived from its hardware fingerprint)
#   BENCH_CONFIG     experiment TOML (default: bench.toml);  BENCH_HISTORY  runs looked back (default 1000: an
#                    open regression stays reported until it goes away or `bench accept` accepts it)
#   BENCH            the bench command (default: bench);     NIGHTLY_RUN=0  gate only, run nothing
#   NIGHTLY_OUT      where the comparison JSON goes (default: runs/nightly-compare.json)
#   NIGHTLY_SITE     where the dashboard goes (default: runs/site; NIGHTLY_SITE= (empty) writes none). A failure
#                    to write it is reported and never changes the exit code, which is the gate's.
set -euo pipefail

: "${BENCH_STORE_URL:?set BENCH_STORE_URL to the shared results store}"
BENCH=${BENCH:-bench}
HISTORY=${BENCH_HISTORY:-1000}
OUT=${NIGHTLY_OUT:-runs/nightly-compare.json}

# The nightly profile: longer timed loops than the interactive default, every backend and variant of the config.
PROFILE=(--set benchmark.min_duration_s=5.0 --set benchmark.min_iterations=500 --set benchmark.warmup_s=2.0)

if [ "${NIGHTLY_RUN:-1}" != 0 ]; then
    args=(--quiet run --no-report --config "${BENCH_CONFIG:-bench.toml}" --set "store.url=${BENCH_STORE_URL}" "${PROFILE[@]}")
    if [ -n "${BENCH_MACHINE_ID:-}" ]; then args+=(--machine-id "$BENCH_MACHINE_ID"); fi
    if [ -n "${BENCH_CLUSTER:-}" ]; then
        args+=(--cluster "$BENCH_CLUSTER")
        for t in ${BENCH_TARGETS:?set BENCH_TARGETS with BENCH_CLUSTER}; do args+=(--target "$t"); done
    fi
    $BENCH "${args[@]}"
fi

mkdir -p "$(dirname "$OUT")"
err=$(mktemp)
trap 'rm -f "$err"' EXIT
set +e
$BENCH --quiet compare --store "$BENCH_STORE_URL" --history "$HISTORY" --json "$OUT" 2>"$err"
code=$?
set -e
cat "$err" >&2
SITE=${NIGHTLY_SITE-runs/site}
if [ -n "$SITE" ]; then
    if $BENCH --quiet report --history --store "$BENCH_STORE_URL" --out "$SITE" >/dev/null; then
        echo "nightly: dashboard in $SITE/index.html" >&2
    else
        echo "nightly: the dashboard could not be written (above); the gate's exit code stands" >&2
    fi
fi
if [ "$code" = 2 ] && grep -q "nothing to compare with --history" "$err"; then
    echo "nightly: first run of this machine and config; nothing to compare yet" >&2
    exit 0
fi
if [ "$code" = 1 ]; then
    echo "nightly: REGRESSION (details in $OUT)" >&2
elif [ "$code" = 3 ]; then
    echo "nightly: INCONCLUSIVE: some cells could not be tested (reasons above; details in $OUT)" >&2
fi
exit "$code"
