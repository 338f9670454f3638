"""The compression frontier of a run: per backend, the Pareto front of validation accuracy vs p50 latency at
batch 1, and the fastest variant whose validation accuracy is within a tolerance of the dense model's.

The choice rules (what may be chosen, on what):
* Only rows that are ok, VALID (`valid` True) and agree with their reference (`agrees` True) are candidates: a
  fast row that computes other answers, or whose timing is not trustworthy, is never "the fastest". The others
  are listed in `excluded` with the reason.
* The choice is made on VALIDATION accuracy (`val_accuracy`, the variant's manifest: measured on the validation
  split when it was built), never on the test accuracy it then reports: choosing on the test split would make
  the reported test accuracy of the winner optimistically biased. Because the row agrees with the reference,
  the backend computes (nearly) the same answers the validation accuracy was measured with. A variant with no
  validation accuracy (an imported ONNX file) is not a candidate.
* The speedup over dense-fp32 on torch-eager carries an interval over processes: the ratio of the medians of the
  two cells' per-process p50s, bounded by both medians' order-statistic intervals at once
  (common.stats.intervals.ratio_ci). Its level is the Bonferroni bound: 87.5% with 5 processes per cell (each
  median's [min, max] covers 93.75%), 95% only from 7 processes per cell up. (Earlier text called it a 95%
  bootstrap interval: it never was one.)

Pure functions of the result rows (no I/O), so the sweep's JSON `frontier` block and its report table are the
same numbers. Accuracy is a fraction; the tolerance too (0.01 = one percentage point).
"""

from __future__ import annotations

import math
from typing import Any

from common.records import BackendFrontier, Row, Run, as_row, as_run
from common.results import REFERENCE_BACKEND, REFERENCE_VARIANT
from common.stats.accuracy import accuracy_ci
from common.stats.intervals import ratio_ci
from reports.tables import Table, acc_with_ci, fnum, fpct

DEFAULT_TOLERANCE = 0.01  # one accuracy point
_EPS = 1e-12  # accuracies are ratios of counts: exact ties must count as "within"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)):
        return None
    return float(v)


def _rows(rows: list[Row] | list[dict[str, Any]]) -> list[Row]:
    """Typed rows (a test's or script's dict rows taken through `as_row`; Rows pass as they are)."""
    return [as_row(r) for r in rows]


def latency_points(rows: list[Row], backend: str) -> list[Row]:
    """The backend's ok batch-1 latency rows that carry both a p50 and an accuracy, in row order."""
    return [r for r in _rows(rows) if r.backend == backend and r.scenario == "latency" and r.status == "ok"
            and _num(r.p50()) is not None and _num(r.accuracy) is not None]


def p50(row: Row | dict[str, Any]) -> float:
    return float(as_row(row).p50() or math.nan)


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates (lower-or-equal latency and higher-or-equal accuracy,
    one of them strictly), by rising latency; of exact duplicates the first is kept."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def not_a_candidate(row_in: Row | dict[str, Any]) -> str:
    """Why a measured latency row may not be chosen ("" when it may): invalid timing, answers that disagree with
    (or were never checked against) the reference, or no validation accuracy to choose on."""
    row = as_row(row_in)
    if row.valid is not True:
        reasons = row.invalid_reasons or []
        return "INVALID timing" + (f": {'; '.join(map(str, reasons))}" if reasons else "")
    if row.agrees is False:
        return "disagrees with its reference" + (f" ({row.agreement_reason})" if row.agreement_reason else "")
    if row.agrees is not True:
        return "unverified: its outputs were never compared with a reference"
    if _num(row.val_accuracy) is None:
        return "no validation accuracy in its manifest to choose on"
    return ""


def process_p50s(row_in: Row | dict[str, Any]) -> list[float]:
    """The per-process p50s the row's headline p50 is the median of (noisy processes left out, as there)."""
    rounds = [r for r in as_row(row_in).rounds or [] if _num(r.p50_ms) is not None and r.n]
    used = [r for r in rounds if not r.noisy] or rounds
    return [float(r.p50_ms or 0.0) for r in used]


def reference_p50(rows: list[Row]) -> float | None:
    """p50 of dense-fp32 on torch-eager (the paper's baseline), if that cell ran."""
    ref = _reference_row(rows)
    return p50(ref) if ref else None


def _reference_row(rows: list[Row]) -> Row | None:
    return next((r for r in latency_points(rows, REFERENCE_BACKEND) if r.variant == REFERENCE_VARIANT), None)


def speedup(rows: list[Row], row: Row) -> tuple[float | None, list[float] | None]:
    """(p50 of dense-fp32 on torch-eager / the row's p50, its interval over processes (ratio_ci; level in the
    module docstring)); (None, None) without
    a VALID reference cell, no interval with fewer than two processes on either side."""
    ref = _reference_row(rows)
    if ref is None or ref.valid is False:
        return None, None
    base, cand = process_p50s(ref), process_p50s(row)
    if not base or not cand:
        return p50(ref) / p50(row), None
    ratio, ci, _level = ratio_ci(base, cand)  # level: Bonferroni bound of the two order-statistic intervals
    return ratio, (list(ci) if ci else None)


def dense_accuracy(rows: list[Row], backend: str) -> tuple[float, str] | None:
    """The dense model's test accuracy as this backend measured it (dense-fp32 on the same backend, else on
    torch-eager), with where it came from: reported beside the choice, not used to make it."""
    typed = _rows(rows)
    for b in (backend, REFERENCE_BACKEND):
        for r in typed:
            if r.backend == b and r.variant == REFERENCE_VARIANT and r.status == "ok" and _num(r.accuracy) is not None:
                return float(r.accuracy or 0.0), b
    return None


def dense_val_accuracy(rows: list[Row]) -> float | None:
    """The dense model's validation accuracy (its manifest's, the same on every backend): the tolerance's origin."""
    for r in _rows(rows):
        if r.variant == REFERENCE_VARIANT and _num(r.val_accuracy) is not None:
            return float(r.val_accuracy or 0.0)
    return None


def speedup_vs_paper(rows: list[Row], backend: str, paper: str | None,
                     row: Row) -> tuple[float | None, list[float] | None]:
    """(the paper's point's p50 / the row's p50 on the same backend, its interval over processes (ratio_ci));
    (None, None) without a VALID paper's-point cell on that backend."""
    ref = next((r for r in latency_points(rows, backend) if paper and r.variant == paper), None)
    if ref is None or ref.valid is False:
        return None, None
    base, cand = process_p50s(ref), process_p50s(row)
    if not base or not cand:
        return p50(ref) / p50(row), None
    ratio, ci, _level = ratio_ci(base, cand)
    return ratio, (list(ci) if ci else None)


def backend_frontier(rows_in: list[Row], backend: str, tolerance: float,
                     paper: str | None = None) -> dict[str, Any] | None:
    """{fastest_within_tolerance, pareto, dense_val_accuracy, excluded, ...} of one backend; None without
    measured rows. The result is the `frontier` block written to results.json (plain JSON)."""
    rows = _rows(rows_in)
    pts = latency_points(rows, backend)
    if not pts:
        return None
    excluded = {r.variant: why for r in pts if (why := not_a_candidate(r))}
    cands = [r for r in pts if r.variant not in excluded]
    front = [cands[i].variant for i in pareto([(p50(r), float(r.val_accuracy or 0.0)) for r in cands])]
    dense = dense_accuracy(rows, backend)
    dense_val = dense_val_accuracy(rows)
    out: dict[str, Any] = {"pareto": front, "chosen_on": "val_accuracy", "excluded": excluded,
                           "dense_val_accuracy": dense_val, "dense_accuracy": dense[0] if dense else None,
                           "dense_accuracy_from": dense[1] if dense else None, "fastest_within_tolerance": None}
    if dense_val is None:
        return out
    floor = dense_val - tolerance - _EPS
    within = [r for r in cands if float(r.val_accuracy or 0.0) >= floor]
    if within:
        best = min(within, key=p50)
        ratio, ratio_ci95 = speedup(rows, best)
        vs_paper, vs_paper_ci95 = speedup_vs_paper(rows, backend, paper, best)
        ci = accuracy_ci({"confusion": best.confusion})
        val, acc = float(best.val_accuracy or 0.0), float(best.accuracy or 0.0)
        out["fastest_within_tolerance"] = {
            "variant": best.variant, "p50_ms": p50(best), "p50_ci_ms": best.p50_ci_ms,
            "val_accuracy": val, "delta_val_accuracy": val - dense_val,
            "accuracy": acc, "accuracy_ci95": [ci.low, ci.high] if ci else None,
            "delta_accuracy": (acc - dense[0]) if dense else None,
            "speedup_vs_dense_fp32_torch": ratio, "speedup_ci95": ratio_ci95,
            "speedup_vs_paper": vs_paper, "speedup_vs_paper_ci95": vs_paper_ci95,
            "valid": True, "agrees": True, "reference": best.reference,
        }
    return out


def compute_frontier(run: Run | dict[str, Any], tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """{backend: backend_frontier} for every backend with measured latency rows, in row order."""
    r = as_run(run)
    rows = r.results
    backends = list(dict.fromkeys(x.backend for x in rows))
    paper = r.sweep.paper_point if r.sweep is not None else None
    out = {}
    for b in backends:
        f = backend_frontier(rows, b, tolerance, paper)
        if f is not None:
            out[b] = f
    return out


# ------------------------------------------------------------------------------------------------ tables
def _frontier(run: Run, tol: float) -> dict[str, BackendFrontier]:
    """The run's stored frontier block, or the one its rows give (a run written before sweeps stored it)."""
    if run.frontier:
        return run.frontier
    return {b: BackendFrontier.model_validate(f, strict=False) for b, f in compute_frontier(run, tol).items()}


def frontier_table(run_in: Run | dict[str, Any]) -> Table:
    """Per backend: the fastest variant within the tolerance of dense accuracy, and the Pareto front."""
    run = as_run(run_in)
    tol = run.sweep.tolerance if run.sweep is not None and run.sweep.tolerance is not None else DEFAULT_TOLERANCE
    frontier = _frontier(run, tol)
    rows_by_cell = {(r.backend, r.variant): r for r in run.results if r.scenario == "latency"}
    body = []
    for backend, f in frontier.items():
        best = f.fastest_within_tolerance
        dense_row = rows_by_cell.get((str(f.dense_accuracy_from), REFERENCE_VARIANT))
        dense_txt = acc_with_ci(dense_row) if dense_row else fpct(f.dense_accuracy)
        if best is None:
            has_val = "dense_val_accuracy" in f.model_fields_set  # older frontier blocks carry no such key
            why = ("none (no dense-fp32 validation accuracy)" if f.dense_val_accuracy is None and has_val
                   else "none (no valid, agreeing variant within tolerance)" if has_val
                   else "none (dense-fp32 did not run)")
            body.append([backend, dense_txt, why, "n/a", "n/a", "n/a", "n/a", ", ".join(f.pareto or [])])
            continue
        row = rows_by_cell.get((backend, best.variant))
        p50_txt = fnum(best.p50_ms)
        if best.valid is False:
            p50_txt += " (INVALID)"
        speed, speed_ci = best.speedup_vs_dense_fp32_torch, best.speedup_ci95
        speed_txt = (f"{speed:.1f}x" + (f" [{speed_ci[0]:.1f}, {speed_ci[1]:.1f}]" if speed_ci else "")) if speed \
            else "n/a"
        delta = best.delta_accuracy
        body.append([backend, dense_txt, best.variant, p50_txt, acc_with_ci(row) if row else fpct(best.accuracy),
                     f"{100 * delta:+.2f} pts" if delta is not None else "n/a", speed_txt,
                     ", ".join(f.pareto or [])])
    excluded = sorted({f"{v} on {b} ({why.split(':')[0]})" for b, f in frontier.items()
                       for v, why in (f.excluded or {}).items()})
    notes = [f"Chosen on validation accuracy (the variant's manifest), among VALID rows that agree with their "
             f"reference: the fastest whose validation accuracy is at most {100 * tol:g} point(s) below dense-fp32's. "
             "Accuracy and Δ accuracy are the test split as the backend measured it (reported, not used to choose); "
             "intervals: 95% bootstrap over the test images. Speedup: p50 of dense-fp32 on torch-eager at batch 1 / "
             "this p50, with an interval over processes: both medians' order-statistic intervals at once, level at "
             "least 87.5% with 5 processes per cell (95% from 7).",
             "Pareto front: the candidates no other candidate beats on both p50 latency and validation accuracy, "
             "fastest first."]
    if excluded:
        notes.append("Not candidates: " + "; ".join(excluded) + ".")
    return Table("Compression frontier — fastest variant within tolerance, per backend",
                 ["backend", "dense accuracy [95% CI]", "fastest within tolerance", "p50 ms", "accuracy [95% CI]",
                  "Δ accuracy", "speedup vs dense-fp32 torch-eager", "Pareto front"], body, notes, "frontier")


def points_table(run_in: Run | dict[str, Any]) -> Table:
    """Every sweep point with its coordinates, storage, accuracy and p50 per backend."""
    run = as_run(run_in)
    points = {p.variant: p for p in (run.sweep.points if run.sweep is not None else [])}
    rows = [r for r in run.results if r.scenario == "latency"]
    backends = list(dict.fromkeys(r.backend for r in rows))
    ref = reference_p50(rows)
    variants = list(dict.fromkeys(r.variant for r in rows))
    body = []
    for v in variants:
        p = points.get(v)
        vr = {r.backend: r for r in rows if r.variant == v}
        any_ok = next((r for r in vr.values() if r.status == "ok"), None)
        torch_row = vr.get(REFERENCE_BACKEND)
        acc_row = torch_row if torch_row is not None and torch_row.status == "ok" else any_ok
        cells = []
        for b in backends:
            r = vr.get(b)
            if r is None or r.status != "ok" or r.latency_ms is None:
                cells.append(r.status if r is not None and r.status else "not run")
                continue
            txt = fnum(p50(r))
            if ref:
                txt += f" ({ref / p50(r):.1f}x)"
            cells.append(txt + (" (INVALID)" if r.valid is False else ""))
        sp = p.sparsity if p is not None else None
        method = p.method if p is not None and "method" in p.model_fields_set else (
            "dense" if v == REFERENCE_VARIANT else "")
        body.append([v, str(method), str((p.scope if p else None) or ""),
                     fnum(sp) if sp is not None else ("0" if v == REFERENCE_VARIANT else ""),
                     str((p.precision if p else None) or (any_ok.precision if any_ok else None) or ""),
                     fnum(any_ok.storage_mb if any_ok else None), acc_with_ci(acc_row) if acc_row else "n/a", *cells])
    return Table("Sweep points — p50 ms at batch 1 (speedup vs dense-fp32 torch-eager)",
                 ["variant", "method", "scope", "sparsity", "precision", "storage MB", "accuracy [95% CI]",
                  *backends], body, ["Accuracy from torch-eager (any ok backend if it did not run)."], "sweep-points")


def latency_plan_table(run_in: Run | dict[str, Any]) -> Table | None:
    """The hardware-aware points: the architecture chosen for this machine, predicted vs measured latency."""
    run = as_run(run_in)
    lat = (getattr(run.sweep, "latency", None) or {}) if run.sweep is not None else {}
    if not isinstance(lat, dict) or not lat.get("points"):
        return None
    body = []
    for v, p in lat["points"].items():
        arch = p.get("architecture") or {}
        ci = p.get("measured_p50_ci_ms")
        measured = fnum(p.get("measured_p50_ms")) + (f" [{fnum(ci[0])}, {fnum(ci[1])}]" if ci else "")
        body.append([v, str(p.get("backend")), fnum(p.get("target_ms")), fnum(p.get("predicted_ms")), measured,
                     " ".join(str(w) for w in (arch.get("widths") or {}).values()),
                     ", ".join(arch.get("removed_layers") or []) or "none"])
    err = lat.get("median_abs_pct_error")
    notes = [f"Widths and removed convs chosen for this machine from its per-layer latency table ({lat.get('table')})"
             f"; sum of parts vs measured p50 over {len(lat.get('sum_of_parts') or [])} {lat.get('precision')} "
             f"point(s) on {lat.get('backend')}: median absolute error "
             f"{'n/a' if err is None else f'{err:.1f}%'}. Chosen on measured latency, never the prediction."]
    return Table("Hardware-aware points — architecture chosen for this machine",
                 ["variant", "backend", "target ms", "predicted ms", "measured p50 ms [95% CI]", "widths per conv",
                  "removed convs"], body, notes, "latency-plan")


def foreign_plan_table(run_in: Run | dict[str, Any]) -> Table | None:
    """Other machines' hardware-aware choices measured on this machine beside its own (`sweep.latency.foreign`):
    p50 with interval, accuracy, and their p50 / ours with its interval and level (what choosing for this machine
    paid)."""
    run = as_run(run_in)
    lat = (getattr(run.sweep, "latency", None) or {}) if run.sweep is not None else {}
    foreign = lat.get("foreign") if isinstance(lat, dict) else None
    if not foreign:
        return None

    def ms(v: Any, ci: Any) -> str:
        return fnum(v) + (f" [{fnum(ci[0])}, {fnum(ci[1])}]" if ci else "")

    def acc(val: Any, test: Any) -> str:
        return f"{fpct(val)} / {fpct(test)}"

    body = []
    for f in foreign:
        who = f.get("chosen_for") or {}
        arch = f.get("architecture") or {}
        ratio, ci = _num(f.get("p50_ratio_vs_own")), f.get("p50_ratio_vs_own_ci95")
        level = _num(f.get("p50_ratio_vs_own_ci_level"))
        paid = "n/a" if ratio is None else f"{ratio:.2f}x" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "") + (
            f" {100 * level:.1f}%" if ci and level is not None else "")
        body.append([str(f.get("variant")), f"{who.get('machine_id')} ({who.get('hardware')})",
                     ms(f.get("measured_p50_ms"), f.get("measured_p50_ci_ms")),
                     acc(f.get("val_accuracy"), f.get("test_accuracy")), str(f.get("own_variant")),
                     ms(f.get("own_measured_p50_ms"), f.get("own_measured_p50_ci_ms")),
                     acc(f.get("own_val_accuracy"), f.get("own_test_accuracy")), paid,
                     ", ".join(arch.get("removed_layers") or []) or "none"])
    notes = ["Each row: the architecture another machine's latency table chose for the same request, cut from this "
             "machine's dense model, fine-tuned with the same recipe and measured in this run's grid. Their p50 / "
             "ours: ratio of the medians of per-process p50s with its interval and the interval's real level (both "
             "medians' order-statistic intervals at once, Bonferroni: about 87.5% with 5 processes per row); above "
             "1, choosing for this machine paid that factor. Accuracy: validation / test from the manifests."]
    return Table("Hardware-aware points — other machines' choices measured on this machine",
                 ["variant", "chosen for", "p50 ms here [CI]", "accuracy val / test", "this machine's choice",
                  "its p50 ms [CI]", "its accuracy val / test", "their p50 / ours [CI] level",
                  "removed convs"], body, notes, "latency-foreign")


def frontier_tables(run_in: Run | dict[str, Any]) -> list[Table]:
    """The sweep's tables (nothing for a run that is not a sweep)."""
    run = as_run(run_in)
    if run.sweep is None:
        return []
    from reports.frontier_points import backend_points_tables

    plan, foreign = latency_plan_table(run), foreign_plan_table(run)
    return [frontier_table(run), points_table(run), *([plan] if plan else []), *([foreign] if foreign else []),
            *backend_points_tables(run)]
