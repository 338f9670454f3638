"""`bench gate validate`: the gate's own false-alarm and detection rates, replayed on stored same-config runs.

Given one machine's runs of one config (oldest first, nothing changed between them by construction):
* false alarms, per cell comparison: `--baseline` on every consecutive pair (each judged with the A/A history of
  the runs before it, as `bench compare` would have had it then) and `--history W` on every run (the W runs before
  it); any change called is a false alarm, an inconclusive cell is counted apart;
* detection: a step planted from run k on by scaling those whole runs (every sample, every per-process value and
  statistic x factor, throughput / factor: their own noise kept) for +5/+10/+20%; for each onset and cell, the
  first slowed run `--history W` calls a regression (delay 0: the first slowed run), whether the first slowed run
  already exits non-zero (regression or inconclusive), and whether the one-pair `--baseline` test (the run before
  the step against the first slowed run) calls it;
* per cell: the run-to-run sd and the MDE at 90% power of both rules.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from common.stats.noise import aa_mde, run_noise, step_mde
from harness.gate import DEFAULT_MARGIN
from harness.gate.history import MAX_PVALUE, MIN_HISTORY, STEP_RUNS
from harness.gate.regression import (
    IMPROVEMENT,
    INCONCLUSIVE,
    REGRESSION,
    CellKey,
    cell_key,
    cell_label,
    compare_runs,
    run_p50,
)

FACTORS = (1.05, 1.10, 1.20)
MAX_DELAY = 3  # runs after the onset that are looked at
_TIME_FIELDS = ("min", "p50", "p90", "p95", "p99", "mean", "stdev", "iqr")


@dataclass
class ModeRate:
    mode: str
    tested: int = 0
    alarms: int = 0
    inconclusive: int = 0

    @property
    def rate(self) -> float | None:
        return self.alarms / self.tested if self.tested else None


@dataclass
class PlantRate:
    factor: float
    plants: int = 0
    found_by: list[int] = field(default_factory=lambda: [0] * MAX_DELAY)  # called by the (d+1)-th slowed run
    first_nonzero: int = 0  # the first slowed run already exits non-zero (regression or inconclusive)
    pair_found: int = 0  # the one-pair --baseline test calls it on the first slowed run
    pair_tested: int = 0


@dataclass
class CellQuality:
    cell: str
    runs: int
    sigma: float | None  # run-to-run sd of log run values
    mde_baseline: float | None
    mde_history: float | None


@dataclass
class Validation:
    runs: int
    window: int
    threshold: float
    alpha: float
    cells: list[CellQuality]
    baseline: ModeRate
    history: ModeRate
    plants: list[PlantRate]
    margin: float = DEFAULT_MARGIN

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["baseline"]["rate"], d["history"]["rate"] = self.baseline.rate, self.history.rate
        return d


def scale_run(run: dict[str, Any], factor: float) -> dict[str, Any]:
    """A copy of `run` slowed by `factor`: every ok row's samples, per-process times and time statistics x factor,
    its rates / factor; spreads relative to the level (CoV, rCoV) unchanged: the run's own noise is kept."""
    out = copy.deepcopy(run)
    for r in out.get("results", []):
        if r.get("status") != "ok":
            continue
        if isinstance(r.get("samples_ms"), list):
            r["samples_ms"] = [float(x) * factor for x in r["samples_ms"]]
        lat = r.get("latency_ms")
        if isinstance(lat, dict):
            for f in _TIME_FIELDS:
                if isinstance(lat.get(f), int | float):
                    lat[f] = float(lat[f]) * factor
        for f in ("p50_ci_ms", "p99_ci_ms"):
            if isinstance(r.get(f), list):
                r[f] = [float(x) * factor for x in r[f]]
        for f in ("throughput_fps", "gmac_per_s"):
            if isinstance(r.get(f), int | float):
                r[f] = float(r[f]) / factor
        for p in r.get("rounds") or []:
            for f in ("p50_ms", "p90_ms", "p99_ms"):
                if isinstance(p.get(f), int | float):
                    p[f] = float(p[f]) * factor
            if isinstance(p.get("fps"), int | float):
                p["fps"] = float(p["fps"]) / factor
    return out


def _keep(run: dict[str, Any], cells: set[CellKey]) -> dict[str, Any]:
    return {**run, "results": [r for r in run.get("results", []) if cell_key(r) in cells]}


def common_cells(runs: Sequence[dict[str, Any]]) -> set[CellKey]:
    """The cells ok in every run (the ones a same-config history can judge)."""
    sets = [{cell_key(r) for r in run.get("results", []) if r.get("status") == "ok"} for run in runs]
    return set.intersection(*sets) if sets else set()


def _count(rate: ModeRate, cmp_cells: Sequence[Any]) -> None:
    for c in cmp_cells:
        if not c.compared:
            continue
        if c.latency == INCONCLUSIVE:
            rate.inconclusive += 1
        else:
            rate.tested += 1
            rate.alarms += c.latency in (REGRESSION, IMPROVEMENT)


def validate(runs: Sequence[dict[str, Any]], *, window: int = 10, threshold: float = 0.05, alpha: float = 0.01,
             factors: Sequence[float] = FACTORS, cells: set[CellKey] | None = None,
             margin: float = DEFAULT_MARGIN) -> Validation:
    """Replay both rules on `runs` (one machine, one config, oldest first) and on planted steps."""
    runs = sorted(runs, key=lambda r: str(r.get("created", "")))
    keys = common_cells(runs) if cells is None else cells & common_cells(runs)
    runs = [_keep(r, keys) for r in runs]
    kw: dict[str, Any] = {"threshold": threshold, "alpha": alpha, "allow_hardware_mismatch": True, "quality": False,
                          "margin": margin}
    base, hist = ModeRate("--baseline (consecutive pairs)"), ModeRate(f"--history {window} (every run)")
    for j in range(1, len(runs)):
        _count(base, compare_runs([runs[j - 1]], runs[j], aa_history=[runs[:j]], **kw).cells)
        _count(hist, compare_runs(runs[max(0, j - window):j], runs[j], history=True, **kw).cells)
    plants = []
    onsets = range(MIN_HISTORY - 1, len(runs) - MAX_DELAY + 1)  # >= MIN_HISTORY - 1 runs before, MAX_DELAY after
    for f in factors:
        pr = PlantRate(f)
        for k in onsets:
            slowed = [*runs[:k], *(scale_run(r, f) for r in runs[k:])]
            found: dict[CellKey, int] = {}
            for d in range(MAX_DELAY):
                cmp = compare_runs(slowed[max(0, k + d - window):k + d], slowed[k + d], history=True, **kw)
                for c in cmp.cells:
                    if c.key in keys and c.key not in found and c.latency == REGRESSION:
                        found[c.key] = d
                    if d == 0 and c.key in keys and c.latency in (REGRESSION, INCONCLUSIVE):
                        pr.first_nonzero += 1
            pair = compare_runs([runs[k - 1]], slowed[k], aa_history=[runs[:k]], **kw)
            for c in pair.cells:
                if c.key in keys and c.latency != INCONCLUSIVE:
                    pr.pair_tested += 1
                    pr.pair_found += c.latency == REGRESSION
            pr.plants += len(keys)
            for d in found.values():
                for i in range(d, MAX_DELAY):
                    pr.found_by[i] += 1
        plants.append(pr)
    quality = []
    for key in sorted(keys):
        vals = [v for r in runs for row in r["results"] if cell_key(row) == key and (v := run_p50(row))]
        noise = run_noise([vals])
        sigma = noise.sigma if noise else None
        ref_n = max(1, min(window, len(vals) - STEP_RUNS))
        quality.append(CellQuality(
            cell_label(key), len(vals), sigma,
            max(aa_mde(noise, alpha), threshold) if noise and noise.df >= 2 else None,
            (lambda m: max(m, threshold) if m is not None else None)(step_mde(sigma, ref_n, STEP_RUNS, MAX_PVALUE))
            if sigma is not None and math.isfinite(sigma) else None))
    return Validation(len(runs), window, threshold, alpha, quality, base, hist, plants, margin)


def median_delay(p: PlantRate) -> float | None:
    """The median delay over the plants found within MAX_DELAY runs (runs after the first slowed one)."""
    delays = [d for d in range(MAX_DELAY) for _ in range(p.found_by[d] - (p.found_by[d - 1] if d else 0))]
    return float(np.median(delays)) if delays else None
