"""The hardware-aware points of `bench sweep --latency-target F | --latency-ms X --backend NAME`.

Flow: the per-layer latency table of this machine, backend, precision and thread count (measured once, cached:
harness/measure/layer_latency.py); the budget (F x the paper's point's latency as a whole-model probe measured on
the same runtime, or X ms); the plan that keeps the most filter importance within it (compression/allocate.py:
widths AND conv layers removed); the point cut to it and fine-tuned with the sweep's recipe
(compression/variants.build_planned_point). The benchmark then MEASURES it like every point, and
`latency_summary` sets the prediction beside the measurement: per latency point, predicted vs measured p50 (with
its interval), and over every point of the table's precision on that backend, how well the sum of parts
predicts the whole (median absolute % error).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.config import Config
from common.errors import UserError
from compression.allocate import (
    LayerValue,
    Plan,
    allocate,
    channel_scores,
    removable_convs,
    score_values,
    sensitivity_values,
)
from compression.latency_table import LatencyTable, median_abs_pct_error
from compression.points import SweepPoint
from compression.sensitivity import layer_sensitivity
from fer.data import FerData
from fer.model import VGG16FER, Arch, arch_of, default_arch
from harness.measure.layer_latency import TABLE_BACKENDS
from harness.orchestrate.latency_table import load_or_measure

Progress = Callable[[str], None]
DEFAULT_GROUP = 8  # channel group: widths are multiples of 8 (the AVX2 / VNNI int8 kernels' block)
GRID_LEVELS = 5  # measured widths per input / output axis of a layer's table (interpolated between)
MAX_FRACTION = 2.0


@dataclass(frozen=True)
class LatencyRequest:
    backend: str
    fraction: float | None  # of the paper's point's latency
    ms: float | None
    group: int = DEFAULT_GROUP

    def point_name(self, precision: str) -> str:
        """l1-t0.50-int8 (half the paper's point's latency) or l1-t1.2ms-int8."""
        what = f"{self.fraction:.2f}" if self.fraction is not None else f"{self.ms:g}ms"
        return f"l1-t{what}-{precision}"


@dataclass
class LatencyBuild:
    name: str
    precision: str
    plan: Plan
    arch: Arch
    target_ms: float
    table: LatencyTable
    table_path: Path
    fields: dict[str, Any] = field(default_factory=dict)


def parse_latency(fraction: float | None, ms: float | None, backends: list[str], group: int) -> LatencyRequest | None:
    """The request of --latency-target / --latency-ms (None without either); UserError (one line) on a bad one."""
    if fraction is None and ms is None:
        return None
    if fraction is not None and ms is not None:
        raise UserError("--latency-target and --latency-ms: give one of them, not both")
    if fraction is not None and not (math.isfinite(fraction) and 0.0 < fraction <= MAX_FRACTION):
        raise UserError(f"--latency-target {fraction:g}: must lie in (0, {MAX_FRACTION:g}] (a fraction of the paper's "
                        "point's measured latency)")
    if ms is not None and not (math.isfinite(ms) and ms > 0):
        raise UserError(f"--latency-ms {ms:g}: must be a positive number of milliseconds")
    if not 1 <= group <= 512:
        raise UserError(f"--latency-group {group}: must lie in 1..512 (channels per width step)")
    table_backends = [b for b in backends if b in TABLE_BACKENDS]
    if not table_backends:
        raise UserError(f"--latency-target/--latency-ms need --backend {' or '.join(TABLE_BACKENDS)} (the runtime "
                        f"whose per-layer latency is measured); got {', '.join(backends)}")
    return LatencyRequest(table_backends[0], fraction, ms, group)


def table_precision(precisions: list[str]) -> str:
    return "int8" if "int8" in precisions else "fp32"


def latency_table(cfg: Config, arch: Arch, backend: str, precision: str, group: int,
                  progress: Progress | None = None) -> tuple[LatencyTable, Path]:
    from harness.orchestrate.pipeline import cache_root

    table, path, _fresh = load_or_measure(cache_root(cfg), arch, backend, precision, cfg.benchmark.threads, group,
                                          GRID_LEVELS, progress)
    return table, path


def show_table(cfg: Config, backend: str, precision: str, group: int, progress: Progress | None = None) -> str:
    """`--show-latency-table`: the table of this config's dense model (measured now unless cached), as text."""
    from compression.latency_table import render

    arch = default_arch(in_channels=cfg.model.in_channels, width=cfg.model.width, dropout=cfg.model.dropout)
    table, path = latency_table(cfg, arch, backend, precision, group, progress)
    return f"{render(table)}\n(cached in {path})"


def plan_values(cfg: Config, dense: VGG16FER, data: FerData, group: int,
                progress: Progress | None = None) -> tuple[list[LayerValue], dict[str, Any]]:
    """The plan's objective (compress.latency_objective) and what it was measured from, for the manifest: the
    default measures each layer's validation-loss increase on the first compress.sensitivity_images validation
    images (compression/sensitivity.py)."""
    say = progress or (lambda _m: None)
    if cfg.compress.latency_objective == "l1":
        return score_values(channel_scores(dense)), {"objective": "l1: summed layer-mean-normalised filter norms"}
    c, rng = cfg.compress, np.random.default_rng(0)  # seeded samples: a rerun plans the same point
    val = rng.permutation(len(data.val))[: c.sensitivity_images]
    cal = rng.permutation(len(data.train))[: c.sensitivity_calibration]
    t0 = time.perf_counter()
    sens = layer_sensitivity(dense, data.val.as_float()[val], data.val.labels[val], group,
                             calibration=data.train.as_float()[cal] if len(cal) else None)
    say(f"layer sensitivity measured on {len(val)} validation images"
        f"{f' (BNs re-estimated on {len(cal)} training images)' if len(cal) else ''} in "
        f"{time.perf_counter() - t0:.0f} s")
    return sensitivity_values(sens), {
        "objective": "sensitivity: summed per-layer validation-loss increase (nats/image), least within budget",
        "sensitivity_images": len(val), "sensitivity_calibration_images": len(cal),
        "sensitivity": {s.name: {"widths": s.widths, "delta": [round(d, 4) for d in s.delta],
                                 "removed": None if s.removed is None else round(s.removed, 4)} for s in sens}}


def plan_point(cfg: Config, dense: VGG16FER, data: FerData, req: LatencyRequest, precision: str,
               progress: Progress | None = None) -> LatencyBuild:
    """Measure (or reuse) the table and choose the plan of the request; UserError when no plan fits."""
    say = progress or (lambda _m: None)
    dense_arch = arch_of(dense)
    table, path = latency_table(cfg, dense_arch, req.backend, precision, req.group, say)
    paper_ms = float(table.probes["paper-point"]["measured_ms"])
    target = req.fraction * paper_ms if req.fraction is not None else float(req.ms or 0.0)
    values, objective = plan_values(cfg, dense, data, req.group, say)
    plan = allocate(table, values, target, req.group, removable=removable_convs(dense_arch))
    if plan is None:
        raise UserError(f"latency target {target:.3f} ms on {req.backend}: no plan fits (rest of the model "
                        f"{table.rest_ms:.3f} ms, with one conv per stage at its narrowest); give a "
                        "larger --latency-target / --latency-ms")
    arch = plan.arch(dense_arch)
    name = req.point_name(precision)
    fields = {"backend": req.backend, "target_ms": round(target, 6), "target_fraction_of_paper": req.fraction,
              "paper_point_probe_ms": round(paper_ms, 6), "table": str(path), "table_key": table.key,
              "algorithm": "exact DP over (layer, input width, latency bins): HALP's knapsack", **objective}
    say(f"{name}: target {target:.3f} ms on {req.backend} (paper's point probe {paper_ms:.3f} ms); plan predicts "
        f"{plan.predicted_ms:.3f} ms: widths {plan.widths}, removed convs "
        f"{[c.name for c in plan.layers if c.removed] or 'none'}")
    return LatencyBuild(name, precision, plan, arch, target, table, path, fields)


def build_point(cfg: Config, data: FerData, dense: VGG16FER, lb: LatencyBuild,
                progress: Progress | None = None) -> Path:
    """Build (or reuse) the planned point in a cache directory keyed by the config and the plan."""
    from compression.variants import build_planned_point
    from harness.orchestrate.pipeline import artifacts_dir

    base = artifacts_dir(SweepPoint("l1", "global", 0.0, lb.precision).config(cfg), data)
    digest = hashlib.sha256(json.dumps(lb.arch, sort_keys=True).encode()).hexdigest()[:12]
    return build_planned_point(cfg, data, dense, base / f"latency-{digest}", lb.name, lb.precision, lb.plan,
                               lb.fields, progress)


def point_fields(lb: LatencyBuild) -> dict[str, Any]:
    """The point's entry in the sweep's `points` (a latency point has no sparsity: its widths follow the plan)."""
    plan = lb.plan.fields()
    return {"variant": lb.name, "method": "l1", "scope": "latency", "sparsity": None, "precision": lb.precision,
            "latency_target_ms": round(lb.target_ms, 6),
            "latency_target_fraction": lb.fields["target_fraction_of_paper"], "backend": lb.fields["backend"],
            "predicted_ms": round(lb.plan.predicted_ms, 6),
            "architecture": {"widths": plan["widths"], "removed_layers": plan["removed_layers"],
                             "features": lb.arch["features"]}}


def latency_summary(results: dict[str, Any], builds: list[LatencyBuild], paths: dict[str, Path],
                    paper_point: str | None) -> dict[str, Any]:
    """Predicted vs measured latency: per latency point, and for every point of the table's precision on the
    table's backend (sum of parts + rest vs the measured p50), with the median absolute % error."""
    if not builds:
        return {}
    lb0 = builds[0]
    backend, precision, table = lb0.fields["backend"], lb0.precision, lb0.table
    rows = {str(r.get("variant")): r for r in results.get("results") or [] if isinstance(r, dict)
            and r.get("backend") == backend and r.get("scenario") == "latency" and r.get("status") == "ok"
            and isinstance(r.get("latency_ms"), dict) and r["latency_ms"].get("p50") is not None}
    every: list[dict[str, Any]] = []
    pairs: list[tuple[float, float]] = []
    for name, row in rows.items():
        arch, prec = _manifest_arch(paths.get(name))
        if arch is None or prec != precision:
            continue
        predicted, measured = table.predict(arch), float(row["latency_ms"]["p50"])
        pairs.append((predicted, measured))
        every.append({"variant": name, "predicted_ms": round(predicted, 6), "measured_p50_ms": measured,
                      "measured_p50_ci_ms": row.get("p50_ci_ms"), "valid": row.get("valid"),
                      "error_pct": round(100.0 * (predicted - measured) / measured, 2) if measured > 0 else None})
    paper = rows.get(paper_point or "")
    points = {}
    for lb in builds:
        got = rows.get(lb.name)
        p50 = float(got["latency_ms"]["p50"]) if got else None
        points[lb.name] = {
            **lb.fields, "predicted_ms": round(lb.plan.predicted_ms, 6), "measured_p50_ms": p50,
            "measured_p50_ci_ms": got.get("p50_ci_ms") if got else None, "valid": got.get("valid") if got else None,
            "meets_target_measured": (p50 <= lb.target_ms) if p50 is not None else None,
            "paper_point_measured_p50_ms": float(paper["latency_ms"]["p50"]) if paper else None,
            "architecture": point_fields(lb)["architecture"],
        }
    return {"backend": backend, "precision": precision, "table": str(lb0.table_path), "rest_ms": table.rest_ms,
            "points": points, "sum_of_parts": every,
            "median_abs_pct_error": median_abs_pct_error(pairs)}


def _manifest_arch(path: Path | None) -> tuple[Arch | None, str | None]:
    if path is None:
        return None, None
    try:
        m = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    return (m.get("arch") if isinstance(m.get("arch"), dict) else None), m.get("precision")
