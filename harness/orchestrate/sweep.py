"""The compression sweep's grid: flags -> validated points, and the loop that builds them (cached, resumable).

`bench sweep` turns `--method/--scope/--sparsity/--precision` into SweepPoints, builds each one into its own
cache directory keyed by the point's config (an interrupted sweep resumes: finished points are reused), then
benchmarks them with the ordinary grid. `build_points` is the one place that builds points, so a cluster
executor (`--cluster`, the Ray fleet) can replace it by a function with the same signature that runs the points
as remote tasks.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.config import PRUNING_METHODS, Config
from common.errors import UserError
from compression.points import MAC_METHODS, MAX_MACS_REDUCTION, MAX_SPARSITY, PRECISIONS, SCOPES, SweepPoint, macs_point
from compression.schedule import (
    CostModel,
    PlanEta,
    PointCost,
    expected_reduction,
    plan_epochs,
)
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


def _numbers(flag: str, text: str, what: str, example: str, ok: Callable[[float], bool], rule: str) -> list[float]:
    """The distinct numbers of a comma-separated flag value, in order; UserError on the first that is not a
    number (`what`, `example`) or breaks `ok` (`rule`)."""
    out: list[float] = []
    for t in _items(flag, text):
        try:
            x = float(t)
        except ValueError:
            raise UserError(f"{flag} {t!r}: not a number; give {what}, e.g. {example}") from None
        if not (math.isfinite(x) and ok(x)):
            raise UserError(f"{flag} {t}: {rule}")
        if x not in out:
            out.append(x)
    return out


def parse_sparsities(text: str) -> list[float]:
    """'0.3,0.5' -> [0.3, 0.5]; each must lie in (0, 1) and not above compress.sparsity's limit."""
    out = _numbers("--sparsity", text, "fractions of filters removed", "0.3,0.5", lambda s: 0.0 < s < 1.0,
                   "must lie in (0, 1) (the fraction of filters removed)")
    for s in out:
        if s > MAX_SPARSITY:
            raise UserError(f"--sparsity {s:g}: at most {MAX_SPARSITY} (compress.sparsity's limit)")
    return out


def parse_reductions(text: str) -> list[float]:
    """'8,16' -> [8.0, 16.0]: MAC-reduction targets (dense MACs / pruned MACs), each in (1, 1000]."""
    return _numbers("--macs-reduction", text, "dense/pruned MAC ratios", "8,16",
                    lambda r: 1.0 < r <= MAX_MACS_REDUCTION,
                    f"must lie in (1, {MAX_MACS_REDUCTION:g}] (dense MACs / pruned MACs)")


def parse_grid(sparsity: str | None, method: str, precision: str, scope: str,
               macs_reduction: str | None = None) -> list[SweepPoint]:
    """The points of the grid, fp32 before int8 at each (method, scope, sparsity) and each (method, MAC target):
    an int8 point then reuses its fp32 sibling's pruned model. MAC-target points rank globally (`--scope` is for
    the sparsity points). `sparsity` None: no sparsity points. UserError (one line) on an empty list or an
    unknown value."""
    methods = _choose("--method", method, PRUNING_METHODS)
    scopes = _choose("--scope", scope, tuple(SCOPES))
    precisions = sorted(_choose("--precision", precision, PRECISIONS), key=PRECISIONS.index)
    sparsities = parse_sparsities(sparsity) if sparsity is not None else []
    reductions = parse_reductions(macs_reduction) if macs_reduction is not None else []
    if reductions:
        bad = [m for m in methods if m not in MAC_METHODS]
        if bad:
            raise UserError(f"--macs-reduction: method {bad[0]!r} cannot prune to a MAC target (supported: "
                            f"{', '.join(sorted(MAC_METHODS))}); sweep it by --sparsity")
    points = [SweepPoint(m, sc, s, p) for m in methods for sc in scopes for s in sparsities for p in precisions]
    points += [macs_point(m, r, p) for m in methods for r in reductions for p in precisions]
    return points


def check_reachable(cfg: Config, points: list[SweepPoint]) -> None:
    """UserError (one line) when a MAC-target point cannot be reached on this config's model with its per-layer cap
    and rounding: said before the dense model is trained or any point built, with the largest reachable target,
    instead of failing after the points before it were built."""
    from compression.prune import max_macs_reduction
    from fer.model import default_arch

    arch = default_arch(in_channels=cfg.model.in_channels, width=cfg.model.width, dropout=cfg.model.dropout)
    c = cfg.compress
    most = max_macs_reduction(arch, c.round_to, c.max_layer_sparsity)
    bad = [p.macs_reduction for p in points if p.macs_reduction > most]
    if bad:
        raise UserError(f"--macs-reduction {max(bad):g}: this model (model.width = {cfg.model.width:g}) reaches at "
                        f"most {most:.1f}x fewer MACs with compress.max_layer_sparsity = {c.max_layer_sparsity:g} "
                        f"and compress.round_to = {c.round_to}; give targets up to {math.floor(most * 10) / 10:g}, "
                        "or raise the cap, or lower round_to")


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
    With compress.budget_minutes set, the epochs are planned to fit it first (`plan_build`).
    """
    from compression.variants import build_point

    say = progress or (lambda _m: None)
    cfg, estimates = plan_build(cfg, data, dense, points, say)
    eta: Eta | PlanEta = PlanEta(estimates) if estimates else Eta()
    paths: dict[str, Path] = {}
    for i, point in enumerate(points, 1):
        prefix = f"[point {i}/{len(points)}] {point.name}"
        say(f"{prefix}: {_eta_text(eta, len(points) - i + 1)}")
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
            if isinstance(eta, PlanEta):
                eta.done(point.name, 0.0)
        else:
            if isinstance(eta, PlanEta):
                eta.done(point.name, seconds)
            else:
                eta.add(seconds)
            say(f"{prefix}: built in {seconds:.0f} s; {_eta_text(eta, len(points) - i)}")
    return paths


def _eta_text(eta: Eta | PlanEta, remaining: int) -> str:
    return eta.text() if isinstance(eta, PlanEta) else eta.text(remaining)


def point_costs(cfg: Config, data: FerData, points: list[SweepPoint]) -> list[PointCost]:
    """Each point's share of the work: the first of an fp32/int8 pair fine-tunes, int8 adds QAT; a point whose
    manifest is already in its cache directory costs nothing."""
    seen: set[SweepPoint] = set()
    out = []
    for p in points:
        pruned = p.with_precision("fp32")
        finetunes = pruned not in seen
        seen.add(pruned)
        cached = (point_dir(cfg, data, p) / p.name / "manifest.json").is_file()
        c = p.config(cfg).compress
        out.append(PointCost(p.name, expected_reduction(c.sparsity, c.macs_reduction), finetunes=finetunes,
                             qat=p.precision == "int8", cached=cached))
    return out


def plan_build(cfg: Config, data: FerData, dense: VGG16FER, points: list[SweepPoint],
               say: Progress) -> tuple[Config, dict[str, float]]:
    """Without compress.budget_minutes: (cfg, {}). With it: measure the training speed once, choose the most
    fine-tuning / QAT epochs whose estimated build time fits (compress.finetune_epochs first, down to 1, then
    qat_epochs), print the plan and its ETA, and return the config to build with and each point's estimate."""
    c = cfg.compress
    if c.budget_minutes <= 0:
        return cfg, {}
    from fer.train import probe_images_per_s

    costs = point_costs(cfg, data, points)
    if all(p.cached for p in costs):
        say(f"budget {c.budget_minutes:g} min: every point is already built")
        return cfg, {}
    n = min(len(data.train), cfg.train.subset) if cfg.train.subset else len(data.train)
    model = CostModel(1.0 / probe_images_per_s(dense, cfg.train), n)
    plan = plan_epochs(costs, model, c.finetune_epochs, c.qat_epochs, 60.0 * c.budget_minutes, c.scale_epochs,
                       c.kd_weight > 0)
    changed = (plan.base_epochs, plan.qat_epochs) != (c.finetune_epochs, c.qat_epochs)
    new = dataclasses.replace(c, finetune_epochs=plan.base_epochs, qat_epochs=plan.qat_epochs)
    cfg = dataclasses.replace(cfg, compress=new)
    what = (f"compress.finetune_epochs {c.finetune_epochs} -> {plan.base_epochs}, qat_epochs {c.qat_epochs} -> "
            f"{plan.qat_epochs}" if changed else f"finetune_epochs {c.finetune_epochs}, qat_epochs {c.qat_epochs}")
    verdict = "fits" if plan.fits else "does NOT fit even at 1 + 1 epochs"
    say(f"budget {c.budget_minutes:g} min: plan {plan.seconds / 60:.1f} min ({what}) {verdict}; "
        f"{sum(not p.cached for p in costs)} of {len(costs)} points to build, ETA "
        f"{time.strftime('%H:%M', time.localtime(time.time() + plan.seconds))}")
    estimates = {p.name: model.point_seconds(p, plan.base_epochs, plan.qat_epochs, c.scale_epochs) for p in costs}
    return cfg, estimates


def sweep_info(points: list[SweepPoint], tolerance: float, paths: dict[str, Path]) -> dict[str, Any]:
    """The `sweep` block of the results JSON: what each variant is, the baseline, the paper's point."""
    return {
        "points": [p.fields() for p in points],
        "baseline": BASELINE,
        "paper_point": PAPER_POINT.name if PAPER_POINT.name in paths else None,
        "tolerance": tolerance,
        "artifacts": artifact_facts(paths),
    }


def artifact_facts(paths: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Per variant, from its manifest: validation/test accuracy at build time (points are chosen on validation),
    MACs, parameters, the MAC reduction reached and how it was fine-tuned (`recipe`)."""
    import json

    out: dict[str, dict[str, Any]] = {}
    for name, path in paths.items():
        try:
            m = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        recipe = m.get("recipe") if isinstance(m.get("recipe"), dict) else {}
        out[name] = {"val_accuracy": m.get("val_accuracy"), "test_accuracy": m.get("test_accuracy"),
                     "gmac": m.get("gmac"), "params": m.get("params"), "onnx_bytes": m.get("onnx_bytes"),
                     "macs_reduction": recipe.get("macs_reduction"), "recipe": recipe or None}
    return out
