"""What the nights of benchmarks/gate_nights.sh say: the paired gate's verdict per night and cell, how stable each
candidate estimator of a cell's level is across A/A nights, and the real factor of each slowdown level.

    python benchmarks/gate_nights.py [OUT [STORE_URL]]   (OUT: the script's folder, default runs/gate-nights)

Why a separate reading: `bench gate validate --paired` gives the rates with their intervals; this prints what the
choice of statistic rests on. For each night and cell the candidate/reference ratio of one statistic of the
per-process p50s: the median over processes (the typical latency the tables report), the minimum, the 10% quantile,
and the fast-mode level the separate-process gate judges; for arms timed in one process also the median of the
per-process ratios (what the shared-process gate judges is their mean log, with a t interval). Across A/A nights
the spread of that log ratio is the statistic's noise (what a slowdown must exceed); across a level's nights its
median is the slowdown really built. Output is Markdown, to paste into docs/measuring.md.
"""

from __future__ import annotations

import math
import statistics as st
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from common.stats.modes import mode_mix
from harness.gate.paired import _values, judge_paired, paired_rows
from harness.history.store import ResultsStore

STATISTICS: dict[str, Callable[[Sequence[float]], float]] = {
    "median": lambda v: float(np.median(v)),
    "min": lambda v: float(np.min(v)),
    "q10": lambda v: float(np.quantile(v, 0.10)),
    "fast-mode level": lambda v: mode_mix(v).fast_ms if mode_mix(v) else math.nan,  # type: ignore[union-attr]
}


def _pct(x: float) -> str:
    return f"{100 * (math.exp(x) - 1):+.1f}%"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    out = Path(args[0] if args else "runs/gate-nights")
    nights = [line.split()[:2] for line in (out / "nights.txt").read_text().splitlines() if line.strip()]
    store = ResultsStore(args[1] if len(args) > 1 else f"sqlite:///{(out / 'nights.sqlite').resolve()}")
    ratios: dict[tuple[str, str, str], list[float]] = defaultdict(list)  # (kind, cell, statistic) -> log ratios
    verdicts: dict[tuple[str, str], list[str]] = defaultdict(list)  # (kind, cell) -> verdict letters
    whole: dict[str, list[str]] = defaultdict(list)  # kind -> the night's exit (0, 1, 3)
    load: dict[str, list[str]] = defaultdict(list)  # kind -> the night's median 1-minute load average
    spread: dict[str, list[float]] = defaultdict(list)  # cell -> max/min of per-process p50s, per arm and night
    for kind, run_id in nights:
        run = store.load_run_typed(run_id)
        judged = judge_paired(run)
        whole[kind].append(str(judged.exit_code()))
        loads = [x.loadavg_1m for r in run.results for x in r.rounds or [] if x.loadavg_1m is not None]
        load[kind].append(f"{st.median(loads):.1f}" if loads else "?")
        for cell in judged.cells:
            verdicts[(kind, cell.label)].append(cell.verdict[0].upper())
        for key, (c_row, r_row) in paired_rows(run).items():
            label = next(c.label for c in judged.cells if c.key == key)
            (cand, c_pairs), (ref, r_pairs) = _values(c_row), _values(r_row)
            if len(cand) < 3 or len(ref) < 3:
                continue
            shared = [math.log(c_pairs[k] / r_pairs[k]) for k in sorted(set(c_pairs) & set(r_pairs))]
            if any(x.interleave == "blocks" for x in (c_row.rounds if c_row else None) or []):
                ratios[(kind, label, "in-process ratio (median)")].append(float(np.median(shared)))
            spread[label] += [max(cand) / min(cand), max(ref) / min(ref)]
            for name, fn in STATISTICS.items():
                a, b = fn(cand), fn(ref)
                if a > 0 and b > 0:
                    ratios[(kind, label, name)].append(math.log(a / b))
    kinds = list(dict.fromkeys(k for k, _ in nights))
    cells = sorted({c for _, c in verdicts})
    print(f"nights: {', '.join(f'{k} {len(whole[k])}' for k in kinds)}; exit per night: "
          + "; ".join(f"{k}: {' '.join(whole[k])}" for k in kinds))
    print("median load average per night: " + "; ".join(f"{k}: {' '.join(load[k])}" for k in kinds))
    print("\n| cell | per-process p50 max/min (median over arms x nights) | "
          + " | ".join(f"{k} verdicts" for k in kinds) + " |")
    print("|---|---|" + "---|" * len(kinds))
    for c in cells:
        print(f"| {c} | {st.median(spread[c]):.2f} | " + " | ".join(''.join(verdicts[(k, c)]) for k in kinds) + " |")
    print("\nR = regression, N = no change, I = inconclusive, B = broken.\n")
    print("| cell | statistic | A/A: SD of log ratio over nights | A/A: widest | "
          + " | ".join(f"{k}: median ratio (min-max)" for k in kinds if k != "aa") + " |")
    print("|---|---|---|---|" + "---|" * (len(kinds) - 1))
    for c in cells:
        for name in [*STATISTICS, "in-process ratio (median)"]:
            aa = ratios.get(("aa", c, name), [])
            sd = f"{100 * st.stdev(aa):.1f}%" if len(aa) > 1 else "n/a"
            wide = _pct(max(aa, key=abs)) if aa else "n/a"
            rest = []
            for k in kinds:
                if k == "aa":
                    continue
                v = ratios.get((k, c, name), [])
                rest.append(f"{_pct(st.median(v))} ({_pct(min(v))} to {_pct(max(v))})" if v else "n/a")
            print(f"| {c} | {name} | {sd} | {wide} | " + " | ".join(rest) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
