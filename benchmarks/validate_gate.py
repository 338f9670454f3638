"""Validate the regression gate by its false-alarm and detection rates on recorded same-config runs.

Not part of `make test` (it runs real benchmarks for as long as you let it). Three steps:

  collect   N same-config `bench run`s of a small grid into a private store (runs minutes apart when
            --pause is given), e.g.
              python benchmarks/validate_gate.py collect --runs 12 --minutes 60 --out /tmp/gate
  analyze   replay the gate on the recorded series:
              (a) false alarms: `--baseline` on every consecutive pair (processes as the unit) and `--history W`
                  on every rolling window (runs as the unit); alarms per cell comparison;
              (b) detection: plant +10% / +20% slowdowns (every process's samples scaled) from a random run
                  onward; detection rate and delay in runs (0 = flagged on the first slowed run);
              python benchmarks/validate_gate.py analyze --out /tmp/gate
  (c), a real slowdown end to end, is two `bench run`s (threads=2, then threads=1) and
  `bench compare --baseline A --candidate B`, which must exit 1 (see the README's measurement section).
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.gate.regression import REGRESSION, cell_label, compare_runs
from harness.history.store import ResultsStore

GRID = ["--backend", "openvino", "--backend", "onnxruntime", "--variant", "l1-int8",
        "--set", "benchmark.batch_sizes=[1]", "--set", "benchmark.rounds=3", "--set", "benchmark.min_duration_s=0.6",
        "--set", "benchmark.warmup_s=0.2"]


def collect(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{out / 'history.sqlite'}"
    sets = ["--set", f"store.url={store}", "--set", f"store.runs_dir={out / 'runs'}",
            *[x for s in args.set for x in ("--set", s)]]
    start = time.monotonic()
    done = 0
    while done < args.runs and time.monotonic() - start < args.minutes * 60:
        t0 = time.monotonic()
        cmd = [sys.executable, "-m", "harness.cli", "--quiet", "run", *GRID, *sets, "--no-report"]
        rc = subprocess.call(cmd, stdout=subprocess.DEVNULL, stderr=(out / "collect.log").open("a"))
        done += rc == 0
        print(f"run {done}: exit {rc}, {time.monotonic() - t0:.0f} s", flush=True)
        if args.pause and done < args.runs:
            time.sleep(args.pause)
    print(f"{done} runs in {(time.monotonic() - start) / 60:.1f} min into {store}")
    return 0


def _runs(out: Path) -> list[dict[str, Any]]:
    with ResultsStore(f"sqlite:///{out / 'history.sqlite'}") as store:
        ids = [r["run_id"] for r in store.list_runs()]
        runs = [store.load_run(i) for i in ids]
    return sorted(runs, key=lambda r: str(r["created"]))


def _ok_cells(run: dict[str, Any]) -> set[str]:
    return {cell_label((r["backend"], r["variant"], r.get("device") or "", r["scenario"], r["batch_size"]))
            for r in run["results"] if r.get("status") == "ok"}


def _alarms(baselines: list[dict[str, Any]], cand: dict[str, Any], threshold: float) -> tuple[set[str], int]:
    cmp = compare_runs(baselines, cand, threshold=threshold, allow_hardware_mismatch=True)
    tested = [c for c in cmp.cells if c.latency not in ("untested",) and c.cand_status == "ok"]
    return {cell_label(c.key) for c in tested if c.latency == REGRESSION}, len(tested)


def _slowed(run: dict[str, Any], factor: float) -> dict[str, Any]:
    """The run with every ok row's samples and per-process numbers scaled by `factor`."""
    run = copy.deepcopy(run)
    for r in run["results"]:
        if r.get("status") != "ok":
            continue
        r["samples_ms"] = [s * factor for s in r.get("samples_ms") or []]
        for p in r.get("rounds") or []:
            for k in ("p50_ms", "p90_ms", "p99_ms"):
                if isinstance(p.get(k), int | float):
                    p[k] *= factor
        lat = r.get("latency_ms")
        if isinstance(lat, dict):
            for k in ("min", "p50", "p90", "p95", "p99", "mean", "stdev", "iqr"):
                if isinstance(lat.get(k), int | float):
                    lat[k] *= factor
    return run


def analyze(args: argparse.Namespace) -> int:
    out = Path(args.out)
    runs = _runs(out)
    n = len(runs)
    span_h = 0.0
    if n >= 2:
        from datetime import datetime

        t = [datetime.fromisoformat(str(r["created"]).replace("Z", "+00:00")) for r in runs]
        span_h = (t[-1] - t[0]).total_seconds() / 3600
    report: dict[str, Any] = {"runs": n, "span_hours": round(span_h, 3), "threshold": args.threshold,
                              "window": args.window}
    # (a) false alarms
    pair_alarms = pair_tests = 0
    pair_cells: list[str] = []
    for i in range(1, n):
        flagged, tested = _alarms([runs[i - 1]], runs[i], args.threshold)
        pair_alarms += len(flagged)
        pair_tests += tested
        pair_cells += [f"{runs[i]['run_id']}: {c}" for c in flagged]
    win_alarms = win_tests = 0
    win_cells: list[str] = []
    for i in range(args.window, n):
        flagged, tested = _alarms(runs[i - args.window:i], runs[i], args.threshold)
        win_alarms += len(flagged)
        win_tests += tested
        win_cells += [f"{runs[i]['run_id']}: {c}" for c in flagged]
    report["false_alarms"] = {
        "pairs": {"alarms": pair_alarms, "comparisons": pair_tests,
                  "rate": pair_alarms / pair_tests if pair_tests else None, "flagged": pair_cells},
        "history_windows": {"alarms": win_alarms, "comparisons": win_tests,
                            "rate": win_alarms / win_tests if win_tests else None, "flagged": win_cells},
    }
    # per-cell run series and between-run spread, for the record
    series: dict[str, list[float]] = {}
    for r in runs:
        for row in r["results"]:
            if row.get("status") == "ok" and isinstance(row.get("latency_ms"), dict):
                key = cell_label((row["backend"], row["variant"], row.get("device") or "", row["scenario"],
                                  row["batch_size"]))
                series.setdefault(key, []).append(float(row["latency_ms"]["p50"]))
    report["series_p50_ms"] = {k: [round(v, 4) for v in vals] for k, vals in series.items()}
    report["between_run_spread"] = {k: round(float((max(v) - min(v)) / np.median(v)), 4) for k, v in series.items()}
    # (b) planted slowdowns
    rng = np.random.default_rng(args.seed)
    plants: dict[str, Any] = {}
    # A plant counts as found only where the unplanted series is NOT flagged at the same run: otherwise a false
    # alarm of the recorded series would pass for a detection.
    plain_pair = {i: _alarms([runs[i - 1]], runs[i], args.threshold)[0] for i in range(1, n)}
    plain_hist = {t: _alarms(runs[max(0, t - args.window):t], runs[t], args.threshold)[0]
                  for t in range(1, n)}
    for factor in (1.10, 1.20):
        hist_delays: list[int | None] = []
        roomy: list[int | None] = []  # plants with max_delay later runs to be found in
        pair_hits = pair_total = confounded = 0
        for _ in range(args.plants):
            lo = max(1, args.window)
            if n - lo < 1:
                break
            s = int(rng.integers(lo, n))
            planted = runs[:s] + [_slowed(r, factor) for r in runs[s:]]
            flagged, _tested = _alarms([planted[s - 1]], planted[s], args.threshold)
            cells = sorted(_ok_cells(planted[s]) & _ok_cells(planted[s - 1]))
            pair_total += len(cells)
            pair_hits += sum(1 for c in cells if c in flagged and c not in plain_pair[s])
            for cell in cells:
                delay = None
                for t in range(s, min(n, s + args.max_delay + 1)):
                    f, _ = _alarms(planted[max(0, t - args.window):t], planted[t], args.threshold)
                    if cell in f and cell in plain_hist[t]:
                        confounded += 1
                    if cell in f and cell not in plain_hist[t]:
                        delay = t - s
                        break
                hist_delays.append(delay)
                if s + args.max_delay < n:
                    roomy.append(delay)
        found = [d for d in hist_delays if d is not None]
        plants[f"+{round(100 * (factor - 1))}%"] = {
            "pair_detection_rate": pair_hits / pair_total if pair_total else None,
            "history_plants": len(hist_delays),
            "history_detected": len(found),
            "history_detection_rate": len(found) / len(hist_delays) if hist_delays else None,
            "delay_runs": {str(d): found.count(d) for d in sorted(set(found))},
            "history_detection_rate_with_room": (sum(d is not None for d in roomy) / len(roomy)) if roomy else None,
            "plants_with_room": len(roomy),
            "confounded_with_false_alarms": confounded,
            "note": "delay 0 = flagged on the first slowed run; a plant near the end of the series has fewer "
                    "later runs to be found in (counted as missed); hits where the unplanted series is flagged "
                    "too are not counted",
        }
    report["planted"] = plants
    text = json.dumps(report, indent=1)
    (out / "validation.json").write_text(text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--runs", type=int, default=12)
    c.add_argument("--minutes", type=float, default=60.0)
    c.add_argument("--pause", type=float, default=0.0, help="seconds between runs")
    c.add_argument("--out", required=True)
    c.add_argument("--set", action="append", default=[], help="extra config overrides (SECTION.KEY=VALUE)")
    a = sub.add_parser("analyze")
    a.add_argument("--out", required=True)
    a.add_argument("--threshold", type=float, default=0.05)
    a.add_argument("--window", type=int, default=5, help="baseline runs per --history replay")
    a.add_argument("--plants", type=int, default=30)
    a.add_argument("--max-delay", type=int, default=3)
    a.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    return collect(args) if args.cmd == "collect" else analyze(args)


if __name__ == "__main__":
    raise SystemExit(main())
