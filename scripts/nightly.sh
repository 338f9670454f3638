#!/usr/bin/env bash
# Nightly benchmark: run the grid with the nightly profile (the paper's full-width model), store it in the shared
# history, then gate it. Once a run has been accepted (`bench accept RUN --reason ...`, which keeps its files), every
# night measures those accepted files beside tonight's in the same processes, timed in alternating blocks
# (`--reference accepted`, interleave blocks by default) and the gate judges tonight against them within the run
# (`bench compare --paired latest`): both arms share each process's latency mode and the host's slow phases. Before any acceptance it gates against the previous runs of the same machine and config
# (`bench compare --history`). Then it writes the history dashboard (`bench report --history`; docs/fleet.md).
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
#   NIGHTLY_REFERENCE  accepted (default): measure the accepted files beside tonight's once an acceptance exists;
#                    none: never (gate with --history only)
#   NIGHTLY_SITE     where the dashboard goes (default: runs/site; NIGHTLY_SITE= (empty) writes none). A failure
#                    to write it is reported and never changes the exit code, which is the gate's.
set -euo pipefail

: "${BENCH_STORE_URL:?set BENCH_STORE_URL to the shared results store}"
BENCH=${BENCH:-bench}
HISTORY=${BENCH_HISTORY:-1000}
OUT=${NIGHTLY_OUT:-runs/nightly-compare.json}

# The nightly profile (common/config.py PROFILES["nightly"]): the paper's full-width model, 20 processes per cell (per arm),
# 3 s loops; trained like --profile full, so both share one cached model (trained on the first night).
PROFILE=(--profile nightly)

# Is there an acceptance whose files can be measured beside tonight's? (`bench history --changes --json`)
has_acceptance() {
    $BENCH --quiet history --store "$BENCH_STORE_URL" --changes --json 2>/dev/null | \
        python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("accepted") else 1)' 2>/dev/null
}
PAIRED=0

if [ "${NIGHTLY_RUN:-1}" != 0 ]; then
    args=(--quiet run --no-report --config "${BENCH_CONFIG:-bench.toml}" --set "store.url=${BENCH_STORE_URL}" "${PROFILE[@]}")
    if [ -n "${BENCH_MACHINE_ID:-}" ]; then args+=(--machine-id "$BENCH_MACHINE_ID"); fi
    if [ -z "${BENCH_CLUSTER:-}" ] && [ "${NIGHTLY_REFERENCE:-accepted}" = accepted ] && has_acceptance; then
        args+=(--reference accepted)
        PAIRED=1
    fi
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
if [ "$PAIRED" = 1 ]; then
    $BENCH --quiet compare --store "$BENCH_STORE_URL" --paired latest --json "$OUT" 2>"$err"
else
    $BENCH --quiet compare --store "$BENCH_STORE_URL" --history "$HISTORY" --json "$OUT" 2>"$err"
fi
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
