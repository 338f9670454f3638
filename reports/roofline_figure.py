"""The roofline figure: per device (CPU, GPU) a log-log plot of achieved GMAC/s against arithmetic intensity
(MACs per byte), one point per measured row, under both roofs: the compute peak of each precision (flat) and the
memory bandwidth (slope: DRAM solid, cache dashed). A point above its roof would be a roof measured low."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from common.records import Row, Run, as_run
from reports.figures import _plain_log_axis, _png

PRECISION_COLORS = {"fp32": "tab:blue", "int8": "tab:red", "bf16": "tab:purple", "fp16": "tab:orange",
                    "tf32": "tab:cyan"}
BACKEND_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def roofline_points(run: Run) -> dict[str, list[Row]]:
    """device -> the ok rows that have an intensity, an achieved GMAC/s and the roofs they were held to."""
    out: dict[str, list[Row]] = {}
    for r in run.results:
        if r.status != "ok" or r.roofline is None or r.arithmetic_intensity is None or r.gmac_per_s is None:
            continue
        out.setdefault(r.roofline.device or "cpu", []).append(r)
    return out


def _roofs(run: Run, device: str) -> dict[str, Any]:
    """The roofs of a device by name (precision -> GMAC/s, bandwidth_gb_per_s, threads, device): the CPU's from the
    typed peaks, the GPU's from their free-form block."""
    peaks = run.machine_peak_gmac_per_s
    if peaks is None:
        return {}
    return (peaks.gpu or {}) if device == "gpu" else peaks.model_dump(exclude_none=True)


def _precision(r: Row) -> str:
    return str(r.roofline.precision if r.roofline is not None else None)


def roofline_figure_obj(run: Run | dict[str, Any]) -> Figure | None:
    """The Figure (None when no row has a roofline)."""
    run = as_run(run)
    by_device = roofline_points(run)
    if not by_device:
        return None
    devices = [d for d in ("cpu", "gpu") if d in by_device] + [d for d in by_device if d not in ("cpu", "gpu")]
    fig = Figure(figsize=(7.5 * len(devices), 5.0))
    for k, device in enumerate(devices):
        ax = fig.add_subplot(1, len(devices), k + 1)
        rows = by_device[device]
        roofs = _roofs(run, device)
        xs = [float(r.arithmetic_intensity or 0.0) for r in rows]
        lo, hi = min(xs) / 4, max(xs) * 4
        grid = np.geomspace(lo, hi, 200)
        raw_bw = roofs.get("bandwidth_gb_per_s")
        bw: dict[str, Any] = raw_bw if isinstance(raw_bw, dict) else {}
        precisions = sorted({_precision(r) for r in rows})
        for p in precisions:
            peak = roofs.get(p) or next((r.roofline.compute_gmac_per_s for r in rows
                                         if r.roofline is not None and r.roofline.precision == p), None)
            if not isinstance(peak, int | float):
                continue
            color = PRECISION_COLORS.get(p, "tab:gray")
            for level, style in (("dram", "-"), ("cache", "--")):
                b = bw.get(level)
                if isinstance(b, int | float) and b > 0:
                    ax.plot(grid, np.minimum(peak, b * grid), color=color, ls=style, lw=1.3, gid=f"roof-{p}-{level}")
            if not bw:
                ax.axhline(peak, color=color, lw=1.3, gid=f"roof-{p}")
            ax.annotate(f"{p} peak {peak:.0f}", (hi, peak), textcoords="offset points", xytext=(-4, 3),
                        ha="right", fontsize=7, color=color)
        backends = sorted({r.backend for r in rows})
        for r in rows:
            p = _precision(r)
            ax.scatter([float(r.arithmetic_intensity or 0.0)], [float(r.gmac_per_s or 0.0)], s=30, zorder=3,
                       marker=BACKEND_MARKERS[backends.index(r.backend) % len(BACKEND_MARKERS)],
                       color=PRECISION_COLORS.get(p, "tab:gray"), edgecolors="black", linewidths=0.4,
                       gid=f"row-{r.backend}-{r.variant}-{r.scenario}-{r.batch_size}")
        for axis in (ax.xaxis, ax.yaxis):
            ax.set_xscale("log") if axis is ax.xaxis else ax.set_yscale("log")
            _plain_log_axis(axis)
        ax.set_xlim(lo, hi)
        ax.set_xlabel("arithmetic intensity (MACs per byte of weights + activations, log)")
        ax.set_ylabel("achieved GMAC/s (log)")
        ax.set_title(f"Roofline, {device.upper()}" + (f" ({roofs.get('device')})" if device == "gpu" else
                                                       f" ({roofs.get('threads', '?')} threads)"))
        ax.grid(True, which="both", alpha=0.3)
        handles = [Line2D([], [], ls="", marker=BACKEND_MARKERS[i % len(BACKEND_MARKERS)], color="gray", label=b)
                   for i, b in enumerate(backends)]
        handles += [Line2D([], [], color=PRECISION_COLORS.get(p, "tab:gray"), label=f"{p} roof") for p in precisions]
        handles += [Line2D([], [], color="black", ls="-", label="DRAM bandwidth"),
                    Line2D([], [], color="black", ls="--", label="cache bandwidth")]
        ax.legend(handles=handles, fontsize=7, loc="lower right")
    return fig


def roofline_figure(run: Run | dict[str, Any]) -> bytes | None:
    """The roofline figure as PNG bytes (None when no row has a roofline)."""
    fig = roofline_figure_obj(run)
    return _png(fig) if fig is not None else None
