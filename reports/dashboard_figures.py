"""Inline SVG figures of the history dashboard: sparklines for the index, and per cell page the p50 per run with
its interval as a band, the p99, the gate's change points, outliers, open change and accepted changes, the paired
ratio to the reference arm, and the accuracy per run.

Hand-built SVG rather than matplotlib: 100 cells x 1,000 runs rendered through matplotlib took seconds per figure
and PNGs of fixed resolution, while a polyline per series is a few microseconds per point, scales with the page,
carries its own tooltips (<title>) and marks the test can find in the DOM (class, data-run), and needs nothing at
view time (no JS library, nothing from the network)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from reports.dashboard_model import CellHistory, RunPoint

SPARK_POINTS = 60  # a sparkline keeps at most this many buckets (min and max of each): only the index downsamples
W, H = 900, 300  # the cell page's main figure, in SVG user units (it scales with the page)
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 14, 34
DOTS_UP_TO = 300  # every run gets a dot up to this many runs; beyond, only the marked runs (invalid, noisy...)


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def _num(v: float) -> str:
    """A tick label: 3 significant digits."""
    return f"{v:.3g}"


def downsample(values: Sequence[float | None], buckets: int = SPARK_POINTS) -> list[tuple[float, float]]:
    """(x index, value) pairs of at most 2 x `buckets` points: the min and the max of each bucket of runs, in run
    order, so a one-run spike still shows in a sparkline of 1,000 runs. Missing values are skipped."""
    pts = [(float(i), float(v)) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(pts) <= 2 * buckets:
        return pts
    out: list[tuple[float, float]] = []
    size = len(pts) / buckets
    for b in range(buckets):
        part = pts[int(b * size):int((b + 1) * size)]
        if not part:
            continue
        lo, hi = min(part, key=lambda p: p[1]), max(part, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
    return out


def sparkline(values: Sequence[float | None], width: int = 140, height: int = 26, mark_last: bool = True) -> str:
    """A small inline SVG polyline of a series (downsampled to SPARK_POINTS buckets); "" with no value."""
    pts = downsample(values)
    if not pts:
        return ""
    n = max(len(values) - 1, 1)
    ys = [p[1] for p in pts]
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or (abs(hi) * 0.05 or 1.0)

    def xy(p: tuple[float, float]) -> str:
        return f"{_fmt(1 + p[0] / n * (width - 2))},{_fmt(height - 2 - (p[1] - lo) / span * (height - 4))}"

    line = " ".join(xy(p) for p in pts)
    last = ""
    if mark_last:
        x, y = xy(pts[-1]).split(",")
        last = f'<circle cx="{x}" cy="{y}" r="2" class="spark-last"/>'
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="p50 over {len(values)} runs"><polyline points="{line}" class="spark-line"/>{last}</svg>')


class _Frame:
    """Maps run index and value to SVG coordinates of a W x h plot area."""

    def __init__(self, n: int, lo: float, hi: float, height: int) -> None:
        pad = (hi - lo) * 0.06 or (abs(hi) * 0.05 or 1.0)
        self.n, self.lo, self.hi, self.h = max(n, 1), lo - pad, hi + pad, height

    def x(self, i: float) -> float:
        return PAD_L + (i / (self.n - 1) if self.n > 1 else 0.5) * (W - PAD_L - PAD_R)

    def y(self, v: float) -> float:
        return PAD_T + (self.hi - v) / (self.hi - self.lo) * (self.h - PAD_T - PAD_B)

    def axes(self, unit: str, points: Sequence[RunPoint]) -> str:
        """Frame, 4 value ticks with grid lines, and up to 6 run labels (the run's date) along the bottom."""
        parts = [f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" height="{self.h - PAD_T - PAD_B}" '
                 'class="plot"/>']
        for k in range(5):
            v = self.lo + (self.hi - self.lo) * k / 4
            y = _fmt(self.y(v))
            parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y}" y2="{y}" class="grid"/>'
                         f'<text x="{PAD_L - 4}" y="{y}" class="tick" text-anchor="end" dy="3">{_num(v)}</text>')
        parts.append(f'<text x="12" y="{_fmt(self.h / 2)}" class="tick" transform="rotate(-90 12 '
                     f'{_fmt(self.h / 2)})" text-anchor="middle">{escape(unit)}</text>')
        step = max(1, math.ceil(len(points) / 6))
        for i in range(0, len(points), step):
            parts.append(f'<text x="{_fmt(self.x(i))}" y="{self.h - PAD_B + 14}" class="tick" text-anchor="middle">'
                         f'{escape(points[i].created[:10])}</text>')
        return "".join(parts)


def _path(frame: _Frame, values: Sequence[float | None]) -> str:
    """An SVG path through the values, broken where a run has none (a failed run is a gap, not a line to 0)."""
    d, pen = [], "M"
    for i, v in enumerate(values):
        if v is None:
            pen = "M"
            continue
        d.append(f"{pen}{_fmt(frame.x(i))} {_fmt(frame.y(v))}")
        pen = "L"
    return " ".join(d)


def _band(frame: _Frame, points: Sequence[RunPoint]) -> str:
    """The runs' p50 intervals as filled polygons (one per stretch of consecutive runs that have one)."""
    out, run = [], []
    for i, p in enumerate([*points, None]):
        if p is not None and p.p50_ci_ms is not None:
            run.append((i, p.p50_ci_ms))
            continue
        if run:
            if len(run) == 1:  # a lone interval: a short vertical bar
                i0, (lo, hi) = run[0]
                out.append(f'<line x1="{_fmt(frame.x(i0))}" x2="{_fmt(frame.x(i0))}" y1="{_fmt(frame.y(lo))}" '
                           f'y2="{_fmt(frame.y(hi))}" class="band-bar"/>')
            else:
                top = [f"{_fmt(frame.x(j))},{_fmt(frame.y(ci[1]))}" for j, ci in run]
                bottom = [f"{_fmt(frame.x(j))},{_fmt(frame.y(ci[0]))}" for j, ci in reversed(run)]
                out.append(f'<polygon points="{" ".join(top + bottom)}" class="band"/>')
            run = []
    return "".join(out)


def _vline(frame: _Frame, i: int, cls: str, run_id: str, title: str) -> str:
    x = _fmt(frame.x(i))
    return (f'<line x1="{x}" x2="{x}" y1="{PAD_T}" y2="{frame.h - PAD_B}" class="{cls}" data-run="{escape(run_id)}">'
            f"<title>{escape(title)}</title></line>")


def _p50_tip(p: RunPoint) -> str:
    ci = f" [{p.p50_ci_ms[0]:.4g}, {p.p50_ci_ms[1]:.4g}]" if p.p50_ci_ms else ""
    flags = ([] if p.valid else ["INVALID: " + "; ".join(p.invalid_reasons)]) + \
        ([f"{p.noisy}/{p.processes} processes noisy"] if p.noisy else [])
    return f"run {p.run_id} {p.created[:16]}: p50 {p.p50_ms:.4g} ms{ci}" + "".join(f"; {f}" for f in flags)


def history_svg(cell: CellHistory) -> str:
    """The cell's p50 per run (line, dots), its interval (band) and p99 (dashed), with the gate's reading marked:
    reference level (blue span), open change (red span from its first run), change points (dashed red lines),
    accepted changes (green lines), outliers (orange rings), INVALID runs (red crosses), noisy runs (hollow)."""
    pts = cell.points
    vals = [v for p in pts for v in (p.p50_ms, p.p99_ms, *(p.p50_ci_ms or ())) if v is not None]
    if not vals:
        return '<p class="empty">no run of this cell has a latency value</p>'
    f = _Frame(len(pts), min(vals), max(vals), H)
    index = {p.run_id: i for i, p in enumerate(pts)}
    parts = [f'<svg class="history" viewBox="0 0 {W} {H}" role="img" aria-label="p50 per run of {escape(cell.label)}">',
             f.axes("ms", pts)]
    half = (f.x(1) - f.x(0)) / 2 if len(pts) > 1 else 10.0
    if cell.reference and cell.reference[0] in index and cell.reference[1] in index:
        a, b = f.x(index[cell.reference[0]]) - half, f.x(index[cell.reference[1]]) + half
        parts.append(f'<rect x="{_fmt(a)}" y="{PAD_T}" width="{_fmt(b - a)}" height="{H - PAD_T - PAD_B}" '
                     f'class="reference"><title>reference level: runs {escape(cell.reference[0])} .. '
                     f"{escape(cell.reference[1])}</title></rect>")
    if cell.since and cell.since in index:
        a = f.x(index[cell.since]) - half
        parts.append(f'<rect x="{_fmt(a)}" y="{PAD_T}" width="{_fmt(W - PAD_R - a)}" height="{H - PAD_T - PAD_B}" '
                     f'class="open-change" data-run="{escape(cell.since)}"><title>open {escape(cell.verdict)} since '
                     f"run {escape(cell.since)}</title></rect>")
    parts.append(_band(f, pts))
    parts.append(f'<path d="{_path(f, [p.p99_ms for p in pts])}" class="p99"/>')
    parts.append(f'<path d="{_path(f, [p.p50_ms for p in pts])}" class="p50"/>')
    for rid in cell.change_points:
        if rid in index:
            parts.append(_vline(f, index[rid], "changepoint", rid, f"change point: a new level from run {rid}"))
    for acc in cell.accepted:
        if acc.run_id in index:
            parts.append(_vline(f, index[acc.run_id], "accepted", acc.run_id,
                                f"accepted by {acc.who} at {acc.created}: {acc.reason}"))
    outliers = set(cell.outliers)
    for i, p in enumerate(pts):
        if p.p50_ms is None:
            continue
        x, y = _fmt(f.x(i)), _fmt(f.y(p.p50_ms))
        tip = f"<title>{escape(_p50_tip(p))}</title>"
        rid = escape(p.run_id)
        if not p.valid:
            parts.append(f'<path d="M{float(x) - 4:.1f} {float(y) - 4:.1f}l8 8m0 -8l-8 8" class="invalid" '
                         f'data-run="{rid}">{tip}</path>')
        elif p.noisy:
            parts.append(f'<circle cx="{x}" cy="{y}" r="3.5" class="noisy" data-run="{rid}">{tip}</circle>')
        elif len(pts) <= DOTS_UP_TO:
            parts.append(f'<circle cx="{x}" cy="{y}" r="2.5" class="dot">{tip}</circle>')
        if p.run_id in outliers:
            parts.append(f'<circle cx="{x}" cy="{y}" r="7" class="outlier" data-run="{rid}">'
                         f"<title>outlier (set aside by the gate): {escape(_p50_tip(p))}</title></circle>")
    parts.append("</svg>")
    return "".join(parts)


def _simple_series(points: Sequence[RunPoint], values: Sequence[float | None], unit: str, cls: str,
                   label: str, height: int = 180, ref: float | None = None) -> str:
    """A small line chart of one value per run (a gap where a run has none), with an optional reference line."""
    vals = [v for v in values if v is not None]
    if not vals:
        return ""
    f = _Frame(len(points), min([*vals, *([ref] if ref is not None else [])]),
               max([*vals, *([ref] if ref is not None else [])]), height)
    parts = [f'<svg class="{cls}" viewBox="0 0 {W} {height}" role="img" aria-label="{escape(label)}">',
             f.axes(unit, points)]
    if ref is not None:
        y = _fmt(f.y(ref))
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y}" y2="{y}" class="refline"/>')
    parts.append(f'<path d="{_path(f, values)}" class="p50"/>')
    if len(points) <= DOTS_UP_TO:
        for i, v in enumerate(values):
            if v is not None:
                parts.append(f'<circle cx="{_fmt(f.x(i))}" cy="{_fmt(f.y(v))}" r="2.5" class="dot">'
                             f"<title>run {escape(points[i].run_id)}: {v:.4g}</title></circle>")
    parts.append("</svg>")
    return "".join(parts)


def ratio_svg(cell: CellHistory) -> str:
    """Candidate p50 / reference-arm p50 per run, with 1.0 marked ("" when no run has a reference arm)."""
    return _simple_series(cell.points, [p.ratio for p in cell.points], "cand / ref", "ratio",
                          f"paired ratio per run of {cell.label}", ref=1.0)


def accuracy_svg(cell: CellHistory) -> str:
    """Accuracy per run ("" when no run has one)."""
    return _simple_series(cell.points, [p.accuracy for p in cell.points], "accuracy", "accuracy",
                          f"accuracy per run of {cell.label}")
