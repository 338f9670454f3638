"""`bench gate validate`: the gate's own false-alarm and detection rates, replayed on stored same-config runs.

Given one machine's runs of one config (oldest first, nothing changed between them by construction):
* false alarms, per cell comparison and per night (any alarm in the whole comparison, the figure Holm bounds by
  alpha): `--baseline` on every consecutive pair (each judged with the A/A history of the runs before it, as
  `bench compare` would have had it then) and `--history W` on every run (the W runs before it). Any change
  called is a false alarm; an inconclusive comparison stays in the denominator (a rate over the comparisons the
  gate was asked to judge, not over the ones it chose to answer) and is counted apart too;
* detection: a step planted from run k on by scaling those whole runs (every sample, every per-process value and
  statistic x factor, throughput / factor: their own noise kept) for +5/+10/+20%, and the same replay on the
  unslowed runs (factor 1.0) printed beside it: a detection rate means little without the rate at which the same
  event happens with nothing slowed. Real slowed runs (a file-built slowdown, measured) go through `real`;
* the MDE per cell replayed through the rule: the smallest planted step of MDE_GRID the rule calls in >= 90% of
  the onsets (not a formula: the formula assumes normal run values, the runs here are not); for `--baseline` over
  the onsets with enough A/A history before them (MIN_AA_DF), where the rule is armed at all;
* every rate with its Clopper-Pearson 95% interval.
`validate_paired` does the same for paired runs (`bench compare --paired`): A/A paired runs (both arms the same
code) give the false alarms per night; the candidate arm scaled gives the planted detection.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import beta

from common.records import Run, as_run
from common.results import is_reference
from common.stats.noise import run_noise
from harness.gate import DEFAULT_MARGIN
from harness.gate.baseline import MIN_AA_DF
from harness.gate.history import MIN_HISTORY
from harness.gate.regression import (
    IMPROVEMENT,
    INCONCLUSIVE,
    REGRESSION,
    CellKey,
    cell_key,
    cell_label,
    compare_runs,
    run_level,
)

FACTORS = (1.05, 1.10, 1.20)
NULL = 1.0  # the unslowed replay, printed beside every detection rate
MDE_GRID = (1.02, 1.05, 1.10, 1.20, 1.50)  # the planted steps the per-cell MDE is read from
MDE_POWER = 0.90
MAX_DELAY = 3  # runs after the onset that are looked at
_TIME_FIELDS = ("min", "p50", "p90", "p95", "p99", "mean", "stdev", "iqr")


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """The exact (Clopper-Pearson) interval of a rate k / n (None for n = 0)."""
    if n <= 0:
        return None
    a = (1.0 - level) / 2.0
    low = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1.0 - a, k + 1, n - k))
    return low, high


@dataclass
class ModeRate:
    mode: str
    tested: int = 0  # comparisons with a verdict other than inconclusive
    alarms: int = 0
    inconclusive: int = 0
    nights: int = 0  # whole comparisons (every cell of one candidate run)
    nights_alarmed: int = 0  # of them with any false alarm

    @property
    def judged(self) -> int:
        """The denominator: every comparison asked, inconclusive ones included."""
        return self.tested + self.inconclusive

    @property
    def rate(self) -> float | None:
        return self.alarms / self.judged if self.judged else None

    @property
    def rate_ci(self) -> tuple[float, float] | None:
        return clopper_pearson(self.alarms, self.judged)

    @property
    def night_rate(self) -> float | None:
        return self.nights_alarmed / self.nights if self.nights else None

    @property
    def night_rate_ci(self) -> tuple[float, float] | None:
        return clopper_pearson(self.nights_alarmed, self.nights)


@dataclass
class PlantRate:
    factor: float
    plants: int = 0  # (onset, cell) plants: the denominator of every rate here, inconclusive ones included
    found_by: list[int] = field(default_factory=lambda: [0] * MAX_DELAY)  # called by the (d+1)-th slowed run
    first_nonzero: int = 0  # the first slowed run already exits non-zero (regression or inconclusive)
    pair_found: int = 0  # the one-pair --baseline test calls it on the first slowed run
    pair_inconclusive: int = 0
    real: bool = False  # measured slowed runs, not planted

    def ci(self, k: int) -> tuple[float, float] | None:
        return clopper_pearson(k, self.plants)


@dataclass
class CellQuality:
    cell: str
    runs: int
    sigma: float | None  # run-to-run sd of log run levels
    mde_baseline: float | None  # smallest MDE_GRID step the --baseline rule calls in >= 90% of onsets (replayed)
    mde_history: float | None  # the same for --history within MAX_DELAY runs


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
    correction: str = "holm"

    @property
    def null(self) -> PlantRate | None:
        """The unslowed replay (factor 1.0): the same events with nothing slowed."""
        return next((p for p in self.plants if p.factor == NULL and not p.real), None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name, m in (("baseline", self.baseline), ("history", self.history)):
            d[name].update(rate=m.rate, rate_ci=m.rate_ci, judged=m.judged, night_rate=m.night_rate,
                           night_rate_ci=m.night_rate_ci)
        for pd, p in zip(d["plants"], self.plants, strict=True):
            pd["found_ci"] = [p.ci(k) for k in p.found_by]
            pd["pair_found_ci"] = p.ci(p.pair_found)
            pd["first_nonzero_ci"] = p.ci(p.first_nonzero)
        return d


def scale_run(run: dict[str, Any], factor: float) -> dict[str, Any]:
    """A copy of `run` slowed by `factor`: every ok row's samples, per-process times and time statistics x factor,
    its rates / factor; spreads relative to the level (CoV, rCoV) unchanged: the run's own noise is kept.
    A dict on purpose: it copies and rewrites the stored numbers, whatever keys a row carries (readers parse it)."""
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


def _keep(run: Run, cells: set[CellKey]) -> Run:
    return run.model_copy(update={"results": [r for r in run.results if cell_key(r) in cells and not is_reference(r)]})


def common_cells(runs: Sequence[Run | dict[str, Any]]) -> set[CellKey]:
    """The cells ok in every run (the ones a same-config history can judge)."""
    sets = [{cell_key(r) for r in as_run(run).results if r.status == "ok" and not is_reference(r)} for run in runs]
    return set.intersection(*sets) if sets else set()


def _count(rate: ModeRate, cmp_cells: Sequence[Any]) -> None:
    rate.nights += 1
    any_alarm = False
    for c in cmp_cells:
        if not c.compared:
            continue
        if c.latency == INCONCLUSIVE:
            rate.inconclusive += 1
        else:
            rate.tested += 1
            alarm = c.latency in (REGRESSION, IMPROVEMENT)
            rate.alarms += alarm
            any_alarm |= alarm
    rate.nights_alarmed += any_alarm


def _mde(hits: dict[float, int], onsets: int) -> float | None:
    """The smallest grid step found in >= MDE_POWER of the onsets (None: not even the largest)."""
    for f in sorted(hits):
        if f in MDE_GRID and onsets and hits[f] / onsets >= MDE_POWER:
            return round(f - 1.0, 6)
    return None


def validate(runs: Sequence[Run | dict[str, Any]], *, window: int = 10, threshold: float = 0.05, alpha: float = 0.01,
             factors: Sequence[float] = FACTORS, cells: set[CellKey] | None = None,
             margin: float = DEFAULT_MARGIN, real: Sequence[tuple[float, dict[str, Any]]] = ()) -> Validation:
    """Replay both rules on `runs` (one machine, one config, oldest first), on planted steps and on the unslowed
    runs. `real`: (the slowdown it was built with, a run measured with it) pairs, each judged by --baseline
    against the newest of `runs` with their A/A history, reported as a detection row of its own."""
    pairs = sorted(((as_run(r), r) for r in runs), key=lambda p: p[0].created)  # each run parsed once, not per replay
    stored = [d if isinstance(d, dict) else d.model_dump() for _, d in pairs]  # what scale_run copies and scales
    keys = common_cells([t for t, _ in pairs]) if cells is None else cells & common_cells([t for t, _ in pairs])
    rs = [_keep(t, keys) for t, _ in pairs]
    kw: dict[str, Any] = {"threshold": threshold, "alpha": alpha, "allow_hardware_mismatch": True, "quality": False,
                          "margin": margin}
    base, hist = ModeRate("--baseline (consecutive pairs)"), ModeRate(f"--history {window} (every run)")
    for j in range(1, len(rs)):
        _count(base, compare_runs([rs[j - 1]], rs[j], aa_history=[rs[:j]], **kw).cells)
        _count(hist, compare_runs(rs[max(0, j - window):j], rs[j], history=True, **kw).cells)
    plants = []
    onsets = range(MIN_HISTORY - 1, len(rs) - MAX_DELAY + 1)  # >= MIN_HISTORY - 1 runs before, MAX_DELAY after
    hist_hits: dict[CellKey, dict[float, int]] = {k: {} for k in keys}
    pair_hits: dict[CellKey, dict[float, int]] = {k: {} for k in keys}
    for f in sorted({NULL, *factors, *MDE_GRID}):
        pr = PlantRate(f)
        for k in onsets:
            # the replays below read runs up to k + MAX_DELAY - 1 only: the later ones are not slowed (nor read)
            slowed = [*rs[:k], *(_keep(as_run(scale_run(r, f)), keys) for r in stored[k:k + MAX_DELAY])]
            found: dict[CellKey, int] = {}
            for d in range(MAX_DELAY):
                cmp = compare_runs(slowed[max(0, k + d - window):k + d], slowed[k + d], history=True, **kw)
                for c in cmp.cells:
                    if c.key in keys and c.key not in found and c.latency == REGRESSION:
                        found[c.key] = d
                    if d == 0 and c.key in keys and c.latency in (REGRESSION, INCONCLUSIVE):
                        pr.first_nonzero += 1
            pair = compare_runs([rs[k - 1]], slowed[k], aa_history=[rs[:k]], **kw)
            for c in pair.cells:
                if c.key in keys:
                    pr.pair_inconclusive += c.latency == INCONCLUSIVE
                    pr.pair_found += c.latency == REGRESSION
                    if k >= MIN_AA_DF + 1:  # the MDE is of the armed rule: enough A/A history before the pair
                        pair_hits[c.key][f] = pair_hits[c.key].get(f, 0) + (c.latency == REGRESSION)
            pr.plants += len(keys)
            for key, d in found.items():
                hist_hits[key][f] = hist_hits[key].get(f, 0) + 1
                for i in range(d, MAX_DELAY):
                    pr.found_by[i] += 1
        if f == NULL or f in factors:
            plants.append(pr)
    if real and rs:
        plants += _real_rows(rs, real, keys, kw)
    quality = []
    for key in sorted(keys):
        vals = [v for r in rs for row in r.results if cell_key(row) == key and (v := run_level(row))]
        noise = run_noise([vals])
        quality.append(CellQuality(cell_label(key), len(vals), noise.sigma if noise else None,
                                   _mde(pair_hits[key], sum(k >= MIN_AA_DF + 1 for k in onsets)),
                                   _mde(hist_hits[key], len(onsets))))
    return Validation(len(rs), window, threshold, alpha, quality, base, hist, plants, margin)


def _real_rows(runs: Sequence[Run], real: Sequence[tuple[float, Run | dict[str, Any]]], keys: set[CellKey],
               kw: dict[str, Any]) -> list[PlantRate]:
    """Detection rows for measured slowed runs, each against the newest stored run with the whole history."""
    rows: dict[float, PlantRate] = {}
    for f, run in real:
        pr = rows.setdefault(f, PlantRate(f, real=True))
        cmp = compare_runs([runs[-1]], _keep(as_run(run), keys), aa_history=[list(runs)], **kw)
        for c in cmp.cells:
            if c.key in keys:
                pr.plants += 1
                pr.pair_found += c.latency == REGRESSION
                pr.pair_inconclusive += c.latency == INCONCLUSIVE
    return list(rows.values())


def median_delay(p: PlantRate) -> float | None:
    """The median delay over the plants found within MAX_DELAY runs (runs after the first slowed one)."""
    delays = [d for d in range(MAX_DELAY) for _ in range(p.found_by[d] - (p.found_by[d - 1] if d else 0))]
    return float(np.median(delays)) if delays else None


def scale_arm(run: dict[str, Any], factor: float, arm: str = "candidate") -> dict[str, Any]:
    """A copy of a paired run with one arm's rows slowed by `factor` (the other arm kept)."""
    from harness.gate.paired import arm as arm_of

    out = copy.deepcopy(run)
    rows = out.get("results") or []
    chosen = [r for r in rows if arm_of(r) == arm]
    slowed = scale_run({"results": chosen}, factor)["results"]
    out["results"] = [r for r in rows if arm_of(r) != arm] + slowed
    return out


@dataclass
class PairedValidation:
    """The paired gate's false alarms on A/A paired runs and its detection of planted (or measured) slowdowns."""

    runs: int
    alpha: float
    threshold: float
    margin: float
    cells: int  # cell judgements in the A/A runs
    alarms: int  # of them a change called
    inconclusive: int
    nights_alarmed: int  # A/A runs with any alarm (the rate Holm bounds by alpha)
    plants: list[PlantRate]
    correction: str = "holm"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rate"] = self.alarms / self.cells if self.cells else None
        d["rate_ci"] = clopper_pearson(self.alarms, self.cells)
        d["night_rate"] = self.nights_alarmed / self.runs if self.runs else None
        d["night_rate_ci"] = clopper_pearson(self.nights_alarmed, self.runs)
        for pd, p in zip(d["plants"], self.plants, strict=True):
            pd["pair_found_ci"] = p.ci(p.pair_found)
        return d


def validate_paired(runs: Sequence[dict[str, Any]], *, alpha: float = 0.01, threshold: float = 0.05,
                    margin: float = DEFAULT_MARGIN, factors: Sequence[float] = FACTORS,
                    real: Sequence[tuple[float, dict[str, Any]]] = ()) -> PairedValidation:
    """`runs`: A/A paired runs (both arms the same code); `real`: (slowdown built into the candidate, paired run)."""
    from harness.gate.paired import judge_paired

    kw: dict[str, Any] = {"alpha": alpha, "threshold": threshold, "margin": margin}
    cells = alarms = unsure = nights = 0
    for run in runs:
        res = judge_paired(run, **kw)
        hit = [c for c in res.cells if c.verdict in (REGRESSION, IMPROVEMENT)]
        cells += len(res.cells)
        alarms += len(hit)
        unsure += len(res.inconclusive)
        nights += bool(hit)
    plants: list[PlantRate] = []
    jobs = [(f, [scale_arm(r, f) for r in runs], False) for f in (NULL, *factors)]
    jobs += [(f, [r for g, r in real if g == f], True) for f in sorted({g for g, _ in real})]
    for f, judged, is_real in jobs:
        pr = PlantRate(f, real=is_real)
        for run in judged:
            res = judge_paired(run, **kw)
            pr.plants += len(res.cells)
            pr.pair_found += sum(c.verdict == REGRESSION for c in res.cells)
            pr.pair_inconclusive += len(res.inconclusive)
        plants.append(pr)
    return PairedValidation(len(runs), alpha, threshold, margin, cells, alarms, unsure, nights, plants)
