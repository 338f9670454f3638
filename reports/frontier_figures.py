"""The sweep's figures: the frontier (accuracy vs p50 per backend, Pareto fronts, dense and the paper's point
marked), storage vs accuracy, and speedup vs sparsity. PNG bytes, or None when there is nothing to plot."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure

from common.records import Row, Run, SweepPoint, as_run
from common.results import REFERENCE_BACKEND, REFERENCE_VARIANT
from reports.figures import _plain_log_axis, _png, interval_bars
from reports.frontier import DEFAULT_TOLERANCE, latency_points, p50, pareto, reference_p50
from reports.frontier_points import best_within_tolerance

_MARKERS = {"fp32": "o", "int8": "s"}


def _backends(run: Run) -> list[str]:
    rows = run.results
    return [b for b in dict.fromkeys(r.backend for r in rows) if latency_points(rows, b)]


def _points(run: Run) -> dict[str, SweepPoint]:
    return {p.variant: p for p in (run.sweep.points if run.sweep is not None else [])}


def _acc(r: Row) -> float:
    return float(r.accuracy if r.accuracy is not None else math.nan)


def frontier_figure(run_in: Run | dict[str, Any]) -> bytes | None:
    """Accuracy vs p50 at batch 1 with each point's p50 and accuracy intervals as error bars: one colour per
    backend, its Pareto front as a line, dense-fp32 as a star,
    the paper's point (l1 local 0.5 int8) circled, each backend's fastest variant within tolerance in a diamond,
    the tolerance floor under the reference dense accuracy."""
    run = as_run(run_in)
    rows = run.results
    backends = _backends(run)
    if not backends:
        return None
    paper = run.sweep.paper_point if run.sweep is not None else None
    tol = run.sweep.tolerance if run.sweep is not None and run.sweep.tolerance is not None else DEFAULT_TOLERANCE
    fig = Figure(figsize=(8.5, 5.2))
    ax = fig.add_subplot()
    cmap = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for k, b in enumerate(backends):
        color = cmap[k % len(cmap)]
        pts = latency_points(rows, b)
        xy = [(p50(r), 100.0 * _acc(r)) for r in pts]
        cell_rows: dict[str, list[Row]] = {}
        for r in rows:
            if r.backend == b:
                cell_rows.setdefault(r.variant, []).append(r)
        for r, (x, y) in zip(pts, xy, strict=True):
            interval_bars(ax, r, x, y, color, f"ci-{b}-{r.variant}")
            prec = r.precision or "fp32"
            group = cell_rows.get(r.variant, [r])
            invalid = any(g.status != "ok" or g.valid is False for g in group)  # any row of the cell
            if any(g.agrees is False for g in group):
                ax.scatter([x], [y], marker="x", s=50, color="tab:red", linewidths=1.8, zorder=4)
            else:
                ax.scatter([x], [y], marker=_MARKERS.get(prec, "o"), s=36, color=color,
                           facecolors="none" if invalid else color, zorder=3)
            if r.variant == REFERENCE_VARIANT:
                ax.scatter([x], [y], marker="*", s=260, color=color, edgecolors="black", zorder=4)
            if paper and r.variant == paper:
                ax.scatter([x], [y], marker="o", s=260, facecolors="none", edgecolors="black", lw=1.8, zorder=4)
            if r.variant == best_within_tolerance(run, b):
                ax.scatter([x], [y], marker="D", s=200, facecolors="none", edgecolors=color, lw=2.2, zorder=4)
            ax.annotate(r.variant, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=6,
                        color=color)
        front = [xy[i] for i in pareto(xy)]
        ax.plot([p[0] for p in front], [p[1] for p in front], color=color, lw=1.5, label=f"{b} (Pareto front)",
                drawstyle="steps-post", zorder=2)
    ref = next((r for r in latency_points(rows, REFERENCE_BACKEND) if r.variant == REFERENCE_VARIANT), None)
    if ref is not None:
        floor = 100.0 * (_acc(ref) - tol)
        ax.axhline(floor, color="grey", ls="--", lw=1, label=f"dense accuracy - {100 * tol:g} pt")
    ax.scatter([], [], marker="*", s=120, color="white", edgecolors="black", label="dense-fp32")
    if paper:
        ax.scatter([], [], marker="o", s=120, facecolors="none", edgecolors="black", label=f"paper: {paper}")
    ax.scatter([], [], marker="D", s=90, facecolors="none", edgecolors="black",
               label=f"fastest within {100 * tol:g} pt of dense")
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    ax.set_xlabel("p50 latency at batch 1 (ms, log scale)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Compression frontier (square: int8, circle: fp32; hollow: INVALID; red x: disagrees)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def storage_figure(run_in: Run | dict[str, Any]) -> bytes | None:
    """Storage (MB at precision) vs accuracy per variant, accuracy from torch-eager where it ran."""
    run = as_run(run_in)
    best: dict[str, Row] = {}
    for r in run.results:
        if r.status != "ok" or r.storage_mb is None or r.accuracy is None:
            continue
        v = r.variant
        if v not in best or r.backend == REFERENCE_BACKEND:
            best[v] = r
    if not best:
        return None
    points = _points(run)
    fig = Figure(figsize=(7, 4.4))
    ax = fig.add_subplot()
    for v, r in best.items():
        pt = points.get(v)
        prec = str((pt.precision if pt else None) or r.precision or "fp32")
        st = float(r.storage_mb or 0.0)
        ax.scatter([st], [100 * _acc(r)], marker=_MARKERS.get(prec, "o"), s=40,
                   color="tab:green" if prec == "int8" else "tab:blue", zorder=3)
        ax.annotate(v, (st, 100 * _acc(r)), textcoords="offset points",
                    xytext=(4, 3), fontsize=7)
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    ax.set_xlabel("parameter storage (MB at precision, log scale)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Storage vs accuracy (green squares: int8)")
    ax.grid(True, which="both", alpha=0.3)
    return _png(fig)


def speedup_figure(run_in: Run | dict[str, Any]) -> bytes | None:
    """Speedup vs dense-fp32 on torch-eager against sparsity: one line per backend x method/scope/precision."""
    run = as_run(run_in)
    rows = run.results
    ref = reference_p50(rows)  # without torch-eager: each backend's own dense-fp32
    points = _points(run)
    if not points:
        return None
    lines: dict[str, list[tuple[float, float]]] = {}
    for b in _backends(run):
        pts = latency_points(rows, b)
        own = next((p50(r) for r in pts if r.variant == REFERENCE_VARIANT), None)
        base = ref or own
        if base is None:
            continue
        for r in pts:
            p = points.get(r.variant)
            if p is None or p.sparsity is None:  # a MAC-target point has no sparsity
                continue
            key = f"{b} {p.method}/{p.scope}/{p.precision}"
            lines.setdefault(key, []).append((float(p.sparsity), base / p50(r)))
    if not lines:
        return None
    fig = Figure(figsize=(7.5, 4.6))
    ax = fig.add_subplot()
    for key, line in sorted(lines.items()):
        line.sort()
        ax.plot([p[0] for p in line], [p[1] for p in line], marker="s" if key.endswith("int8") else "o", ms=4,
                label=key, ls="-" if key.endswith("int8") else "--")
    ax.set_yscale("log")
    _plain_log_axis(ax.yaxis)
    ax.set_xlabel("sparsity (fraction of filters removed)")
    ax.set_ylabel("speedup vs dense-fp32 " + ("on torch-eager" if ref else "on the same backend")
                  + " (p50, batch 1, log)")
    ax.set_title("Speedup vs sparsity")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


SWEEP_FIGURES = {
    "frontier.png": ("Compression frontier: accuracy vs p50 per backend (Pareto fronts; star: dense-fp32; "
                     "circle: the paper's point; diamond: fastest within tolerance)", frontier_figure),
    "sweep_storage_vs_accuracy.png": ("Sweep: storage vs accuracy", storage_figure),
    "speedup_vs_sparsity.png": ("Sweep: speedup vs sparsity", speedup_figure),
}


def render_sweep(run_in: Run | dict[str, Any]) -> dict[str, tuple[str, bytes | None]]:
    """file name -> (caption, PNG or None); empty for a run that is not a sweep."""
    run = as_run(run_in)
    if run.sweep is None:
        return {}
    return {name: (caption, fn(run)) for name, (caption, fn) in SWEEP_FIGURES.items()}

