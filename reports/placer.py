"""A small label placer: put each short label next to its point where it overlaps no label placed before it, no
point, and stays inside the axes (adjustText is not a dependency; numbered points keep labels short enough for
a greedy search over a ring of offsets to succeed)."""

from __future__ import annotations

from typing import Any

from matplotlib.transforms import Bbox

# offsets in points, nearest first; then the same ring further out
_RING = ((5, 3), (5, -11), (-12, 3), (-12, -11), (-3, 8), (-3, -16), (8, -4), (-16, -4))
OFFSETS = tuple((dx * k, dy * k) for k in (1.0, 1.8, 2.6, 3.4) for dx, dy in _RING)
POINT_RADIUS_PX = 5.0


def _overlaps(box: Bbox, others: list[Bbox]) -> bool:
    return any(box.overlaps(o) for o in others)


def place_labels(ax: Any, points: list[tuple[float, float]], texts: list[str], fontsize: float = 7,
                 **text_kw: Any) -> list[Any]:
    """Annotate `points` (data coordinates) with `texts`; returns the Annotation artists, in order. Each label
    takes the first offset whose box is clear; where none is (a crowded spot), the least crowded one."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px = [ax.transData.transform(p) for p in points]
    r = POINT_RADIUS_PX * fig.dpi / 72.0
    taken: list[Bbox] = [Bbox.from_extents(x - r, y - r, x + r, y + r) for x, y in px]
    frame = ax.get_window_extent(renderer)
    placed = []
    for (x, y), text in zip(points, texts, strict=True):
        best, best_score = None, None
        for dx, dy in OFFSETS:
            ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
                              **text_kw)
            box = ann.get_window_extent(renderer)
            inside = frame.containsx(box.x0) and frame.containsx(box.x1) and frame.containsy(box.y0) \
                and frame.containsy(box.y1)
            score = sum(box.overlaps(o) for o in taken) + (0 if inside else 100)
            if best_score is None or score < best_score:
                if best is not None:
                    best.remove()
                best, best_score = ann, score
            else:
                ann.remove()
            if score == 0:
                break
        if best is not None:
            taken.append(best.get_window_extent(renderer))
            placed.append(best)
    return placed
