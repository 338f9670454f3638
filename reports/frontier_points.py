"""Per-backend tables of a sweep's points: what each point costs (MACs, parameters, file bytes), how accurate it is
(validation and test), how fast (p50 at batch 1 and 32 with intervals over processes) and how much faster than the
dense model on torch-eager and than the paper's point on the same backend, each speedup with its interval.

Speedup intervals: ratio of the medians of the two cells' per-process p50s (`rounds`), percentile bootstrap
resampling each cell's processes independently (common.stats.intervals.ratio_ci). Pure functions of the results.
"""

from __future__ import annotations

import math
from typing import Any

from common.records import Row, Run, as_row, as_run
from common.results import REFERENCE_BACKEND, REFERENCE_VARIANT
from common.stats.intervals import ratio_ci
from reports.tables import Table, acc_with_ci, fnum, fpct


def _ok(r: Row | None) -> bool:
    return r is not None and r.status == "ok" and r.latency_ms is not None


def round_p50s(row_in: Row | dict[str, Any]) -> list[float]:
    """The per-process p50s of a row, noisy processes left out as the runner does (its headline p50 alone for a
    row without rounds)."""
    row = as_row(row_in)
    rounds = [r for r in row.rounds or [] if r.p50_ms is not None]
    used = [r for r in rounds if not r.noisy] or rounds  # as the runner: noisy processes out, unless all are
    vals = [float(r.p50_ms or 0.0) for r in used]
    if not vals and _ok(row) and row.p50() is not None:
        vals = [float(row.p50() or 0.0)]
    return vals


def speedup(base_in: Row | dict[str, Any] | None,
            row_in: Row | dict[str, Any] | None) -> tuple[float, tuple[float, float] | None] | None:
    """p50(base) / p50(row) with its interval over processes (the two order-statistic intervals combined, at
    ratio_ci's Bonferroni level); None when either cell has no timing."""
    base = as_row(base_in) if base_in is not None else None
    row = as_row(row_in) if row_in is not None else None
    if base is None or row is None or not (_ok(base) and _ok(row)):
        return None
    ratio, ci, _level = ratio_ci(round_p50s(base), round_p50s(row))
    return None if not math.isfinite(ratio) else (ratio, ci)


def fmt_speedup(s: tuple[float, tuple[float, float] | None] | None) -> str:
    if s is None:
        return "n/a"
    ratio, ci = s
    return f"{ratio:.2f}x" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def fmt_p50(row_in: Row | dict[str, Any] | None) -> str:
    row = as_row(row_in) if row_in is not None else None
    if row is None or not _ok(row):
        fps = row.throughput_fps if row is not None else None
        if row is not None and row.status == "ok" and fps is not None and fps > 0:
            # a throughput cell run through async streams (OpenVINO) has no per-call p50: say what it measured
            return f"n/a (async: {fps:,.0f} img/s)"
        return (row.status if row is not None else None) or "not run"
    txt = fnum(row.p50())
    ci = row.p50_ci_ms
    if ci is not None and len(ci) == 2:
        txt += f" [{fnum(ci[0])}, {fnum(ci[1])}]"
    return txt + (" (INVALID)" if row.valid is False else "")


def _facts(run: Run) -> dict[str, dict[str, Any]]:
    """Per-variant facts from the artifacts (sweep.artifacts: manifests' val/test accuracy, MACs, reduction; the
    manifests' own keys)."""
    arts = (run.sweep.artifacts if run.sweep is not None else None) or {}
    return {str(k): v for k, v in arts.items() if isinstance(v, dict)}


def backend_points_table(run_in: Run | dict[str, Any], backend: str) -> Table | None:
    """Every point measured on `backend`: MACs, parameters, file bytes, val/test accuracy, p50 at batch 1 and
    32 with intervals, speedup vs dense-fp32 on torch-eager and vs the paper's point here."""
    run = as_run(run_in)
    rows = run.results
    mine = [r for r in rows if r.backend == backend]
    lat = {r.variant: r for r in mine if r.scenario == "latency"}
    if not lat:
        return None
    b32 = {r.variant: r for r in mine if r.scenario == "throughput" and r.batch_size == 32}
    ref = next((r for r in rows if r.backend == REFERENCE_BACKEND and r.variant == REFERENCE_VARIANT
                and r.scenario == "latency"), None)
    paper_name = run.sweep.paper_point if run.sweep is not None else None
    paper = lat.get(str(paper_name)) if paper_name else None
    facts = _facts(run)
    body = []
    for v, r in lat.items():
        f = facts.get(v, {})  # a manifest's facts: free-form keys
        gmac = r.gmac if r.gmac is not None else f.get("gmac")
        red = f.get("macs_reduction")
        macs = f"{1000 * float(gmac):.1f} M" if isinstance(gmac, int | float) else "n/a"
        if isinstance(red, int | float) and red > 0:
            macs += f" ({float(red):.1f}x)"
        params = r.params if r.params is not None else f.get("params")
        file_bytes = r.file_bytes or r.loaded_bytes or f.get("file_bytes")
        val = r.val_accuracy if r.val_accuracy is not None else f.get("val_accuracy")
        body.append([
            v, macs, f"{int(params):,}" if isinstance(params, int | float) else "n/a",
            f"{int(file_bytes):,}" if isinstance(file_bytes, int | float) else "n/a",
            fpct(val), acc_with_ci(r) if r.accuracy is not None else "n/a",
            fmt_p50(r), fmt_p50(b32.get(v)) if b32 else "not run",
            fmt_speedup(speedup(ref, r)),
            ("1 (the paper's point)" if v == paper_name else fmt_speedup(speedup(paper, r))) if paper is not None
            else "n/a",
        ])
    notes = [
        "MACs: multiply-accumulates per image of the conv and linear layers (in brackets: fewer than dense). "
        "File bytes: the file this backend loads. Val accuracy: the variant's PyTorch model on the validation "
        "split at build time (what a point is chosen on); test accuracy: measured in this run on this backend, "
        "95% bootstrap interval over the test images.",
        "p50 in ms with its 95% interval over processes; batch 32: p50 of one batch (a backend that runs batch 32 "
        "through async streams, as OpenVINO does, measures throughput only: its img/s). Speedups: p50 of the "
        f"reference / p50 of the point, 95% bootstrap interval over both cells' processes; the paper's point is "
        f"{paper_name or 'not in this sweep'} on {backend}.",
    ]
    return Table(f"Sweep points on {backend}",
                 ["variant", "MACs", "params", "file bytes", "val accuracy", "test accuracy [95% CI]",
                  "p50 b1 ms [CI]", "p50 b32 ms [CI]", "speedup vs dense-fp32 torch-eager [CI]",
                  "speedup vs paper's point [CI]"], body, notes, f"sweep-points-{backend}")


def backend_points_tables(run_in: Run | dict[str, Any]) -> list[Table]:
    """One `backend_points_table` per backend with latency rows (nothing for a run that is not a sweep)."""
    run = as_run(run_in)
    if run.sweep is None:
        return []
    backends = list(dict.fromkeys(r.backend for r in run.results))
    return [t for t in (backend_points_table(run, b) for b in backends) if t is not None]


def best_within_tolerance(run_in: Run | dict[str, Any], backend: str) -> str | None:
    """The variant the frontier names fastest within tolerance on `backend` (whatever rule chose it)."""
    run = as_run(run_in)
    f = (run.frontier or {}).get(backend)
    best = f.fastest_within_tolerance if f is not None else None
    return best.variant if best is not None and best.variant else None
