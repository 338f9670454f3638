"""Report figures as PNG bytes (matplotlib's object API on the Agg canvas; no pyplot global state).

Each function returns None when the run has nothing to plot (e.g. no ok throughput cells), so the
report can say so instead of drawing an empty or made-up chart. They read a typed run (`common.records.Run`); a
dict run (a test's, a script's) is taken through `as_run` at the entry.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from common.records import Row, Run, as_run
from common.results import REFERENCE_BACKEND
from common.stats.accuracy import accuracy_ci
from common.text import finite_number
from reports.placer import place_labels
from reports.tables import cell_name, is_invalid

DPI = 100
_MAX_BOX_SAMPLES = 20_000  # per cell; more adds nothing visible to a box plot


def _plain_log_axis(axis: Any) -> None:
    """Log-scale tick labels as plain numbers (0.3, 1, 10) instead of powers of ten."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()



def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated when minimising x (latency) and maximising y (accuracy)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best_y = float("-inf")
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def _latency_cells(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.status == "ok" and r.scenario == "latency" and finite_number(r.p50()) is not None]


FRONT_GID = "pareto-front"
DISAGREE_MARKER = "x"


def latency_points(run: Run | dict[str, Any]) -> list[dict[str, Any]]:
    """One point per cell (backend x variant, per machine on a cluster) with an ok batch-1 latency and an accuracy:
    {row, x (p50 ms), y (accuracy %), invalid (any row of the cell INVALID or failed), disagrees (any row of the
    cell disagrees with the reference), name}. Sorted by latency, so the numbers read left to right."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in as_run(run).results:
        where = str(r.machine_id or r.target or "")
        groups.setdefault((r.backend, r.variant, where), []).append(r)
    out = []
    for (_b, _v, where), rows in groups.items():
        lat = next((r for r in _latency_cells(rows) if finite_number(r.accuracy) is not None), None)
        if lat is None or lat.accuracy is None:
            continue
        out.append({"row": lat, "x": float(lat.p50() or 0.0), "y": 100.0 * lat.accuracy,
                    "invalid": any(is_invalid(r) or r.status != "ok" for r in rows),
                    "disagrees": any(r.agrees is False for r in rows),
                    "name": cell_name(lat) + (f" @{where}" if where else "")})
    return sorted(out, key=lambda p: (p["x"], -p["y"]))


def interval_bars(ax: Any, row: Row, x: float, y: float, color: str, gid: str) -> None:
    """The row's p50 interval over processes (horizontal) and its test accuracy's 95% interval (vertical) as error
    bars around the point: two points inside each other's noise must look it, as they do in the tables."""
    ci = row.p50_ci_ms
    acc = accuracy_ci({"confusion": row.confusion}) if row.confusion else None
    if not ci and acc is None:
        return
    xerr = [[max(0.0, x - float(ci[0]))], [max(0.0, float(ci[1]) - x)]] if ci else None
    yerr = [[max(0.0, y - 100.0 * acc.low)], [max(0.0, 100.0 * acc.high - y)]] if acc is not None else None
    bars = ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="none", ecolor=color, elinewidth=0.8, alpha=0.55,
                       capsize=2, zorder=1)
    for child in bars.get_children():
        child.set_gid(gid)


def accuracy_vs_latency_figure(run: Run | dict[str, Any]) -> Figure | None:
    """Accuracy vs p50 latency (batch 1): numbered points listed in a table beside the plot, INVALID points
    hollow, points that disagree with the reference a red x, each with its p50 and accuracy intervals as error
    bars, and the Pareto front of the valid, agreeing points
    as a line (it never passes through a point the gate would refuse)."""
    pts = latency_points(run)
    if not pts:
        return None
    fig = Figure(figsize=(10.0, max(4.8, 1.2 + 0.17 * len(pts))))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.08, 0.1, 0.56, 0.8))
    for i, p in enumerate(pts, 1):
        interval_bars(ax, p["row"], p["x"], p["y"], "tab:red" if p["disagrees"] else "tab:blue", f"ci-point-{i}")
        if p["disagrees"]:
            ax.scatter([p["x"]], [p["y"]], s=60, marker=DISAGREE_MARKER, color="tab:red", linewidths=1.8, zorder=4,
                       gid=f"point-{i}")
        else:
            ax.scatter([p["x"]], [p["y"]], s=45, marker="o", facecolors="none" if p["invalid"] else "tab:blue",
                       edgecolors="tab:blue", linewidths=1.2, zorder=3, gid=f"point-{i}")
    good = [i for i, p in enumerate(pts) if not p["invalid"] and not p["disagrees"]]
    front = [good[k] for k in pareto_front([(pts[i]["x"], pts[i]["y"]) for i in good])]
    if front:
        ax.plot([pts[i]["x"] for i in front], [pts[i]["y"] for i in front], color="tab:green", lw=1.6, marker="o",
                ms=9, mfc="none", mec="tab:green", zorder=2, gid=FRONT_GID, drawstyle="steps-post")
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    xs, ys = [p["x"] for p in pts], [p["y"] for p in pts]
    ax.set_xlim(min(xs) / 1.35, max(xs) * 1.35)
    pad = max(1.0, 0.08 * (max(ys) - min(ys)))
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    ax.set_xlabel("p50 latency at batch 1 (ms, log scale)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Accuracy vs latency")
    ax.grid(True, which="both", alpha=0.3)
    place_labels(ax, [(p["x"], p["y"]) for p in pts], [str(i) for i in range(1, len(pts) + 1)], fontsize=7)
    handles = [
        Line2D([], [], marker="o", ls="", color="tab:blue", label="measured"),
        Line2D([], [], marker="o", ls="", mfc="none", mec="tab:blue", label="INVALID (any row of the cell)"),
        Line2D([], [], marker=DISAGREE_MARKER, ls="", color="tab:red", mew=1.8, label="disagrees with the reference"),
        Line2D([], [], color="tab:green", marker="o", mfc="none", label="Pareto front (valid, agreeing)"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    lines = [f"{i:>2}  {p['name']}" + (" INVALID" if p["invalid"] else "") + (" DISAGREES" if p["disagrees"] else "")
             for i, p in enumerate(pts, 1)]
    fig.text(0.655, 0.72, "\n".join(lines), fontsize=7, family="monospace", va="top", gid="point-table")
    return fig


def accuracy_vs_latency(run: Run | dict[str, Any]) -> bytes | None:
    """The accuracy-vs-latency figure as PNG bytes (None when nothing to plot)."""
    fig = accuracy_vs_latency_figure(run)
    return _png(fig) if fig is not None else None


def storage_vs_accuracy(run: Run | dict[str, Any]) -> bytes | None:
    """Storage MB vs accuracy, one point per variant (accuracy of its reference cell)."""
    by_variant: dict[str, tuple[float, float]] = {}
    for r in as_run(run).results:
        st, acc = finite_number(r.storage_mb), finite_number(r.accuracy)
        if r.status == "ok" and st is not None and acc is not None:
            v = r.variant
            if v not in by_variant or r.backend == REFERENCE_BACKEND:
                by_variant[v] = (st, 100.0 * acc)
    if not by_variant:
        return None
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot()
    for v, (st, acc) in by_variant.items():
        ax.scatter([st], [acc], s=50, color="tab:green", zorder=3)
        ax.annotate(v, (st, acc), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    ax.set_xlabel("storage (MB at precision, log scale)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Storage vs accuracy")
    ax.grid(True, which="both", alpha=0.3)
    return _png(fig)


def latency_distribution(run: Run | dict[str, Any]) -> bytes | None:
    """Box plots of the raw latency samples of every ok batch-1 latency cell."""
    cells = [r for r in _latency_cells(as_run(run).results) if r.samples_ms]
    if not cells:
        return None
    data = []
    for r in cells:
        s = [float(x) for x in r.samples_ms or []]
        if len(s) > _MAX_BOX_SAMPLES:
            step = len(s) / _MAX_BOX_SAMPLES
            s = [s[int(i * step)] for i in range(_MAX_BOX_SAMPLES)]
        data.append(s)
    labels = [cell_name(r) + (" (INVALID)" if is_invalid(r) else "") for r in cells]
    fig = Figure(figsize=(7.5, 0.35 * len(cells) + 1.4))
    ax = fig.add_subplot()
    ax.boxplot(data, orientation="horizontal", whis=(1, 99), showfliers=False)
    ax.set_yticks(range(1, len(labels) + 1), labels, fontsize=7)
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    ax.set_xlabel("latency per request (ms, log scale; whiskers p1-p99)")
    ax.set_title("Latency distribution per cell (raw samples, batch 1)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return _png(fig)


def throughput_vs_batch(run: Run | dict[str, Any]) -> bytes | None:
    """Throughput (images/s) vs batch size, one line per backend x variant (throughput scenario)."""
    lines: dict[str, list[tuple[int, float, bool]]] = {}
    for r in as_run(run).results:
        fps = finite_number(r.throughput_fps)
        if r.status == "ok" and r.scenario == "throughput" and fps is not None:
            lines.setdefault(cell_name(r), []).append((r.batch_size or 1, fps, is_invalid(r)))
    if not lines:
        return None
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot()
    batches: set[int] = set()
    for k, (name, pts) in enumerate(sorted(lines.items())):
        pts.sort()
        batches.update(p[0] for p in pts)
        line = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, label=name,
                       linestyle=("-", "--", ":")[(k // 10) % 3])[0]
        bad = [p for p in pts if p[2]]
        if bad:
            ax.scatter([p[0] for p in bad], [p[1] for p in bad], s=80, facecolors="none",
                       edgecolors=line.get_color(), zorder=3)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(batches), [str(b) for b in sorted(batches)])
    ax.set_yscale("log")
    _plain_log_axis(ax.yaxis)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("batch size")
    ax.set_ylabel("throughput (images/s, log scale)")
    ax.set_title("Throughput vs batch size (circled: INVALID)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


FIGURES = {
    "accuracy_vs_latency.png": ("Accuracy vs p50 latency: numbered points (table beside), hollow INVALID, red x "
                                "disagrees with the reference, green line the Pareto front of valid agreeing points",
                                accuracy_vs_latency),
    "storage_vs_accuracy.png": ("Storage vs accuracy", storage_vs_accuracy),
    "latency_distribution.png": ("Latency distribution per cell", latency_distribution),
    "throughput_vs_batch.png": ("Throughput vs batch size", throughput_vs_batch),
}


def render_all(run: Run) -> dict[str, tuple[str, bytes | None]]:
    """file name -> (caption, PNG bytes or None when there is nothing to plot)."""
    return {name: (caption, fn(run)) for name, (caption, fn) in FIGURES.items()}
