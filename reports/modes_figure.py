"""The modes figure: every process's p50 of each batch-1 latency cell as a strip, with the fast mode and the
threshold above which a process counts as slow marked.

Why a strip and not a box: on 2-vCPU VMs a cell's processes land in a few distinct levels (the fast mode and one or
more slow ones), and how many land in each changes from run to run. A box plot hides that; one dot per process shows
it, and it is the picture behind the gate's two judgements (the fast level, and the share of slow processes).
Input is plain data (`ModeStrip`), so the figure knows nothing of rows or runs.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

DPI = 100
FAST_COLOUR = "#1f77b4"
SLOW_COLOUR = "#d62728"
REFERENCE_COLOUR = "#7f7f7f"


@dataclass(frozen=True)
class ModeStrip:
    """One cell's processes: `p50s_ms` in round order; `fast_ms` the fast mode's level and `threshold_ms` the
    level above which a process is slow (None: no mode mix was found, e.g. too few processes); `reference` draws
    the strip of a reference arm in grey beside its candidate."""

    label: str
    p50s_ms: Sequence[float]
    fast_ms: float | None = None
    threshold_ms: float | None = None
    reference: bool = False


def strip_colours(s: ModeStrip) -> list[str]:
    """One colour per positive p50: grey for a reference arm, red above the slow threshold, blue otherwise."""
    values = [v for v in s.p50s_ms if v > 0]
    if s.reference:
        return [REFERENCE_COLOUR] * len(values)
    return [SLOW_COLOUR if s.threshold_ms is not None and v > s.threshold_ms else FAST_COLOUR for v in values]


def modes_figure(strips: Sequence[ModeStrip]) -> bytes | None:
    """PNG bytes of one horizontal strip per cell (None when no cell has a process p50)."""
    strips = [s for s in strips if any(v > 0 for v in s.p50s_ms)]
    if not strips:
        return None
    fig = Figure(figsize=(8.0, 0.9 + 0.42 * len(strips)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    # each cell on its own scale, relative to its fast mode (log axis): cells 0.3 ms and 20 ms apart share one
    # figure, and a mode sits at the same place in every cell (x1.32 is the second mode of a 0.112 ms cell)
    labels = []
    for i, s in enumerate(strips):
        y = len(strips) - 1 - i
        values = [v for v in s.p50s_ms if v > 0]
        base = s.fast_ms if s.fast_ms else min(values)
        n = len(values)
        jitter = [((k % 5) - 2) * 0.06 for k in range(n)]  # deterministic: the same run draws the same figure
        ax.scatter([v / base for v in values], [y + j for j in jitter], s=18, c=strip_colours(s), alpha=0.8,
                   linewidths=0)
        ax.plot([1.0, 1.0], [y - 0.3, y + 0.3], color="black", lw=1.5)
        if s.threshold_ms is not None:
            t = s.threshold_ms / base
            ax.plot([t, t], [y - 0.3, y + 0.3], color=SLOW_COLOUR, lw=1, ls="--")
        labels.append(f"{s.label} (fast {base:.3g} ms)")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}x"))
    ax.set_yticks(range(len(strips)))
    ax.set_yticklabels(list(reversed(labels)), fontsize=8)
    ax.set_xlabel("p50 of each process / the cell's fast-mode level (log scale); dashed red: slow above; "
                  "red dots: slow processes")
    ax.grid(axis="x", alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()
