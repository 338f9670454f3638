"""The compression sweep's grid: flags -> validated points, and the loop that builds them (cached, resumable).

`bench sweep` turns `--method/--scope/--sparsity/--precision` into SweepPoints, builds each one into its own
cache directory keyed by the point's config (an interrupted sweep resumes: finished points are reused), then
benchmarks them with the ordinary grid. `build_points` is the one place that builds points, so a cluster
executor (`--cluster`, issue 11) can replace it by a function with the same signature that runs the points
as remote tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.config import PRUNING_METHODS, Config
from common.errors import UserError
from compression.points import MAX_SPARSITY, PRECISIONS, SCOPES, SweepPoint
from fer.data import FerData
from fer.model import VGG16FER

Progress = Callable[[str], None]
BASELINE = "dense-fp32"  # benchmarked with every sweep: the reference every speedup is quoted against
PAPER_POINT = SweepPoint("l1", "local", 0.5, "int8")  # FPTQ as published: L1, per layer, sparsity 0.5, int8


def _items(flag: str, text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UserError(f"{flag} {text!r}: empty; give a comma-separated list")
    return list(dict.fromkeys(items))


def _choose(flag: str, text: str, allowed: tuple[str, ...] | list[str]) -> list[str]:
    items = _items(flag, text)
    for t in items:
        if t not in allowed:
            raise UserError(f"{flag} {t!r}: unknown; valid: {', '.join(allowed)}")
    return items


def parse_sparsities(text: str) -> list[float]:
    """'0.3,0.5' -> [0.3, 0.5]; each must lie in (0, 1) and not above compress.sparsity's limit."""
    out: list[float] = []
    for t in _items("--sparsity", text):
        try:
            s = float(t)
        except ValueError:
            raise UserError(f"--sparsity {t!r}: not a number; give fractions of filters removed, e.g. 0.3,0.5"
                            ) from None
        if not 0.0 < s < 1.0:
            raise UserError(f"--sparsity {t}: must lie in (0, 1) (the fraction of filters removed)")
        if s > MAX_SPARSITY:
            raise UserError(f"--sparsity {t}: at most {MAX_SPARSITY} (compress.sparsity's limit)")
        if s not in out:
            out.append(s)
    return out


def parse_grid(sparsity: str, method: str, precision: str, scope: str) -> list[SweepPoint]:
    """The points of the grid, fp32 before int8 at each (method, scope, sparsity): an int8 point then reuses
    its fp32 sibling's pruned model. UserError (one line) on an empty list or an unknown value."""
    methods = _choose("--method", method, PRUNING_METHODS)
    scopes = _choose("--scope", scope, tuple(SCOPES))
    precisions = _choose("--precision", precision, PRECISIONS)
    sparsities = parse_sparsities(sparsity)
    return [SweepPoint(m, sc, s, p) for m in methods for sc in scopes for s in sparsities
            for p in sorted(precisions, key=PRECISIONS.index)]


def point_dir(cfg: Config, data: FerData, point: SweepPoint) -> Path:
    """The cache directory of a point: keyed by the data and the point's own model/train/compress config."""
    from harness.orchestrate.pipeline import artifacts_dir

    return artifacts_dir(point.config(cfg), data)


class Eta:
    """Remaining time from the mean duration of the points built so far (reused points cost ~nothing)."""

    def __init__(self) -> None:
        self.durations: list[float] = []

    def add(self, seconds: float) -> None:
        self.durations.append(seconds)

    def text(self, remaining: int) -> str:
        if remaining == 0:
            return "done"
        if not self.durations:
            return f"ETA unknown ({remaining} to go)"
        s = remaining * sum(self.durations) / len(self.durations)
        return f"ETA {s / 60:.1f} min ({remaining} to go)" if s >= 60 else f"ETA {s:.0f} s ({remaining} to go)"


def build_points(cfg: Config, data: FerData, dense: VGG16FER, points: list[SweepPoint],
                 progress: Progress | None = None) -> dict[str, Path]:
    """Build (or reuse) every point, one after another on this machine; {point name: artifact directory}.

    The point-building loop of the sweep, kept as one function: a cluster executor replaces it wholesale.
    """
    from compression.variants import build_point

    say = progress or (lambda _m: None)
    eta = Eta()
    paths: dict[str, Path] = {}
    for i, point in enumerate(points, 1):
        prefix = f"[point {i}/{len(points)}] {point.name}"
        say(f"{prefix}: {eta.text(len(points) - i + 1)}")
        t0 = time.perf_counter()
        reused: list[bool] = []

        def note(msg: str, _reused: list[bool] = reused, _name: str = point.name) -> None:
            if msg.startswith(f"{_name}: up to date"):
                _reused.append(True)
            say(f"  {msg}")

        paths[point.name] = build_point(cfg, data, dense, point_dir(cfg, data, point), point, progress=note)
        seconds = time.perf_counter() - t0
        if reused:
            say(f"{prefix}: reused from the cache")
        else:
            eta.add(seconds)
            say(f"{prefix}: built in {seconds:.0f} s; {eta.text(len(points) - i)}")
    return paths


def sweep_info(points: list[SweepPoint], tolerance: float, paths: dict[str, Path]) -> dict[str, Any]:
    """The `sweep` block of the results JSON: what each variant is, the baseline, the paper's point."""
    return {
        "points": [p.fields() for p in points],
        "baseline": BASELINE,
        "paper_point": PAPER_POINT.name if PAPER_POINT.name in paths else None,
        "tolerance": tolerance,
    }
