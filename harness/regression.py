"""Regression test between runs, per cell (backend, variant, device, scenario, batch size).

Latency: a change is called only when BOTH hold (cf. asv's `_stats`): the Mann-Whitney U test on the raw
samples rejects "same distribution" at `alpha`, AND the relative change of the p50 is beyond the practical
`threshold`. With several baseline runs (`--history N`), the threshold widens to the run-to-run spread of
the baselines' p50s: within-run samples say nothing about between-run noise (on a shared VM the same cell
moved 20-30% between runs minutes apart, while MWU on thousands of samples gives p ~ 0 for any shift).
Accuracy: a change is called when the two-proportion z-test on the confusion-matrix counts
rejects at `alpha` (the change lies outside its 95% confidence interval). A cell that was ok and now errors
or times out is a regression too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

from common.errors import UserError
from common.results import config_hash, fingerprint_id
from reports.stats import counts_from_confusion, two_proportion_pvalue

CellKey = tuple[str, str, str, str, int]  # backend, variant, device, scenario, batch_size

REGRESSION, IMPROVEMENT, SAME = "regression", "improvement", "no change"
BROKEN, UNTESTED = "regression (broken)", "untested"
MIN_SAMPLES = 5  # fewer raw samples than this on either side: the latency test is not run


def cell_key(row: dict[str, Any]) -> CellKey:
    """The identity of a measurement cell across runs."""
    return (
        str(row.get("backend")),
        str(row.get("variant")),
        str(row.get("device") or ""),
        str(row.get("scenario")),
        int(row.get("batch_size") or 1),
    )


def cell_label(key: CellKey) -> str:
    backend, variant, device, scenario, batch = key
    dev = f"[{device}]" if device and device != "cpu" else ""
    return f"{backend}{dev}/{variant} {scenario} b{batch}"


@dataclass
class CellComparison:
    """The verdict for one cell; numbers are None where a side has none."""

    key: CellKey
    latency: str = UNTESTED
    accuracy: str = UNTESTED
    base_status: str | None = None
    cand_status: str | None = None
    base_p50_ms: float | None = None
    cand_p50_ms: float | None = None
    rel_change: float | None = None
    p_value: float | None = None
    base_n: int = 0
    cand_n: int = 0
    base_accuracy: float | None = None
    cand_accuracy: float | None = None
    accuracy_p_value: float | None = None
    run_to_run_noise: float | None = None  # max relative deviation of baseline runs' p50s (>= 2 runs)
    threshold_used: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def is_regression(self) -> bool:
        return self.latency in (REGRESSION, BROKEN) or self.accuracy == REGRESSION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        backend, variant, device, scenario, batch = self.key
        d.pop("key")
        return {"backend": backend, "variant": variant, "device": device, "scenario": scenario,
                "batch_size": batch, "regression": self.is_regression, **d}


@dataclass
class Comparison:
    """All cells compared, with what was compared against what."""

    baseline_ids: list[str]
    candidate_id: str
    threshold: float
    alpha: float
    cells: list[CellComparison]
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[CellComparison]:
        return [c for c in self.cells if c.is_regression]

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline_ids,
            "candidate": self.candidate_id,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "regressions": len(self.regressions),
            "improvements": sum(1 for c in self.cells if IMPROVEMENT in (c.latency, c.accuracy)),
            "warnings": self.warnings,
            "cells": [c.to_dict() for c in self.cells],
        }


def latency_verdict(
    base: Sequence[float], cand: Sequence[float], threshold: float, alpha: float
) -> tuple[str, float | None, float | None]:
    """(verdict, relative p50 change, Mann-Whitney p-value) for two raw latency sample sets."""
    b = np.asarray(base, dtype=np.float64)
    c = np.asarray(cand, dtype=np.float64)
    b, c = b[np.isfinite(b)], c[np.isfinite(c)]
    if len(b) < MIN_SAMPLES or len(c) < MIN_SAMPLES:
        return UNTESTED, None, None
    p50_b, p50_c = float(np.median(b)), float(np.median(c))
    rel = (p50_c - p50_b) / p50_b if p50_b > 0 else math.inf
    p = float(mannwhitneyu(c, b, alternative="two-sided").pvalue)
    if p < alpha and rel > threshold:
        return REGRESSION, rel, p
    if p < alpha and rel < -threshold:
        return IMPROVEMENT, rel, p
    return SAME, rel, p


def _pooled_counts(rows: list[dict[str, Any]]) -> tuple[int, int] | None:
    correct = total = 0
    for r in rows:
        counts = counts_from_confusion(r.get("confusion"))
        if counts is None:
            return None
        correct += counts[0]
        total += counts[1]
    return (correct, total) if total else None


def compare_cells(
    baseline_rows: list[dict[str, Any]],
    candidate_rows: list[dict[str, Any]],
    *,
    threshold: float = 0.05,
    alpha: float = 0.05,
) -> list[CellComparison]:
    """Compare candidate cells with baseline cells; several baseline rows per cell are pooled."""
    base: dict[CellKey, list[dict[str, Any]]] = {}
    for r in baseline_rows:
        base.setdefault(cell_key(r), []).append(r)
    cand: dict[CellKey, dict[str, Any]] = {cell_key(r): r for r in candidate_rows}
    out: list[CellComparison] = []
    for key in sorted(set(base) | set(cand), key=lambda k: (k[0], k[1], k[2], k[3] != "latency", k[4])):
        cc = CellComparison(key=key)
        b_rows, c_row = base.get(key, []), cand.get(key)
        b_ok = [r for r in b_rows if r.get("status") == "ok"]
        cc.base_status = "ok" if b_ok else (b_rows[-1].get("status") if b_rows else None)
        cc.cand_status = c_row.get("status") if c_row else None
        out.append(cc)
        if c_row is None:
            cc.notes.append("not in the candidate run")
            continue
        if not b_rows:
            cc.notes.append("new cell: not in the baseline")
            continue
        if cc.cand_status != "ok":
            reason = c_row.get("reason") or ""
            if b_ok and cc.cand_status in ("error", "timeout"):
                cc.latency = BROKEN
                cc.notes.append(f"was ok, now {cc.cand_status}: {reason}".rstrip(": "))
            else:
                cc.notes.append(f"candidate {cc.cand_status}: {reason}".rstrip(": "))
            continue
        if not b_ok:
            cc.notes.append(f"baseline {cc.base_status}; nothing to compare")
            continue
        b_samples = [s for r in b_ok for s in (r.get("samples_ms") or [])]
        c_samples = list(c_row.get("samples_ms") or [])
        cc.base_n, cc.cand_n = len(b_samples), len(c_samples)
        cc.run_to_run_noise = run_to_run_noise(b_ok)
        cc.threshold_used = max(threshold, cc.run_to_run_noise or 0.0)
        if cc.threshold_used > threshold:
            cc.notes.append(f"threshold widened to {cc.threshold_used:.1%}: run-to-run spread of {len(b_ok)} "
                            "baseline runs")
        cc.latency, cc.rel_change, cc.p_value = latency_verdict(b_samples, c_samples, cc.threshold_used, alpha)
        if b_samples:
            cc.base_p50_ms = float(np.median(b_samples))
        if c_samples:
            cc.cand_p50_ms = float(np.median(c_samples))
        if cc.latency == UNTESTED:
            cc.notes.append(f"too few raw samples (baseline {cc.base_n}, candidate {cc.cand_n})")
        if any(r.get("valid") is False for r in [*b_ok, c_row]):
            cc.notes.append("an INVALID measurement is involved")
        _compare_accuracy(cc, b_ok, c_row, alpha)
    return out


def run_to_run_noise(rows: list[dict[str, Any]]) -> float | None:
    """Largest relative deviation of each run's p50 from the median of those p50s (None for < 2 runs)."""
    p50s = [float(np.median(r["samples_ms"])) for r in rows if len(r.get("samples_ms") or []) >= MIN_SAMPLES]
    if len(p50s) < 2:
        return None
    mid = float(np.median(p50s))
    return max(abs(p / mid - 1.0) for p in p50s) if mid > 0 else None


def _compare_accuracy(cc: CellComparison, b_ok: list[dict[str, Any]], c_row: dict[str, Any], alpha: float) -> None:
    bc, cnt = _pooled_counts(b_ok), counts_from_confusion(c_row.get("confusion"))
    if bc is None or cnt is None:
        accs = [r["accuracy"] for r in b_ok if isinstance(r.get("accuracy"), int | float)]
        cc.base_accuracy = float(np.mean(accs)) if accs else None
        cand_acc = c_row.get("accuracy")
        cc.cand_accuracy = float(cand_acc) if isinstance(cand_acc, int | float) else None
        return
    cc.base_accuracy, cc.cand_accuracy = bc[0] / bc[1], cnt[0] / cnt[1]
    p = two_proportion_pvalue(cnt[0], cnt[1], bc[0], bc[1])
    cc.accuracy_p_value = p
    if p >= alpha:
        cc.accuracy = SAME
    else:
        cc.accuracy = REGRESSION if cc.cand_accuracy < cc.base_accuracy else IMPROVEMENT


def check_comparable(baselines: list[dict[str, Any]], candidate: dict[str, Any], allow_mismatch: bool) -> list[str]:
    """UserError if the hardware fingerprints differ (unless allowed); warnings for other differences."""
    warnings: list[str] = []
    fp_c = fingerprint_id(candidate)
    for b in baselines:
        fp_b = fingerprint_id(b)
        if fp_b != fp_c:
            msg = (f"run {b.get('run_id')} has fingerprint {fp_b} but run {candidate.get('run_id')} has "
                   f"{fp_c}: results from different machines/software are not comparable")
            if not allow_mismatch:
                raise UserError(msg + " (pass --allow-hardware-mismatch to compare anyway)")
            warnings.append(msg)
        if config_hash(b) != config_hash(candidate):
            warnings.append(f"run {b.get('run_id')} used a different config ({config_hash(b)} vs "
                            f"{config_hash(candidate)})")
    return warnings


def compare_runs(
    baselines: list[dict[str, Any]],
    candidate: dict[str, Any],
    *,
    threshold: float = 0.05,
    alpha: float = 0.05,
    allow_hardware_mismatch: bool = False,
) -> Comparison:
    """Compare `candidate` with one or more baseline runs (pooled per cell)."""
    if not baselines:
        raise UserError("nothing to compare against: no baseline run")
    if not 0.0 < threshold < 10.0:
        raise UserError(f"--threshold {threshold}: must be a relative change between 0 and 10 (0.05 = 5%)")
    if not 0.0 < alpha < 0.5:
        raise UserError(f"alpha {alpha}: must be between 0 and 0.5")
    warnings = check_comparable(baselines, candidate, allow_hardware_mismatch)
    ids = [str(b.get("run_id")) for b in baselines]
    if str(candidate.get("run_id")) in ids:
        warnings.append(f"run {candidate.get('run_id')} is compared with itself")
    rows = [r for b in baselines for r in b.get("results", [])]
    cells = compare_cells(rows, candidate.get("results", []), threshold=threshold, alpha=alpha)
    return Comparison(ids, str(candidate.get("run_id")), threshold, alpha, cells, warnings)
