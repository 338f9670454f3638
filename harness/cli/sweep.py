"""`bench sweep`: the compression frontier. Build every (method, scope, sparsity, precision) point (each cached
by its own config, so an interrupted sweep resumes), benchmark them with dense-fp32 on the chosen backends as one
run, and report per backend the Pareto front and the fastest variant within a tolerance of dense accuracy."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common import console
from common.config import Config
from common.errors import UserError
from harness.cli._common import add_config_arguments
from harness.cli.run import add_output_arguments

if TYPE_CHECKING:
    from common.records import Row
    from fer.model import VGG16FER
    from harness.orchestrate.latency_sweep import LatencyBuild

NAME = "sweep"
HELP = "sweep sparsity x method x scope x precision, benchmark every point, report the accuracy/latency frontier"
DEFAULT_SPARSITY = "0.3,0.5,0.7,0.8"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--sparsity", default=None, metavar="S,S,...",
                   help=f"comma-separated fractions of filters removed, each in (0, 1) (default {DEFAULT_SPARSITY}, "
                        f"or none when --macs-reduction is given)")
    p.add_argument("--macs-reduction", default=None, metavar="R,R,...",
                   help="comma-separated MAC-reduction targets (dense MACs / pruned MACs, each > 1): points pruned "
                        "with one global ranking until that many times fewer MACs, named like l1-m16-int8")
    p.add_argument("--method", default="l1", metavar="M,M,...",
                   help="comma-separated pruning methods: l1, cdcp, sfpga, drcp, tgpp (default l1)")
    p.add_argument("--precision", default="fp32,int8", metavar="P,P", help="fp32, int8 or both (default both)")
    p.add_argument("--scope", default="local", metavar="S,S", help="local, global or both (default local)")
    p.add_argument("--latency-target", type=float, default=None, metavar="F",
                   help="add a hardware-aware point: widths and conv layers removed to fit F x the paper's point's "
                        "latency on --backend (openvino or onnxruntime), from a per-layer table measured on this "
                        "machine (docs/compression.md); named like l1-t0.50-int8")
    p.add_argument("--latency-ms", type=float, default=None, metavar="X",
                   help="as --latency-target, with a budget of X ms instead of a fraction")
    p.add_argument("--latency-group", type=int, default=8, metavar="N",
                   help="a hardware-aware point's widths are multiples of N channels (default 8)")
    p.add_argument("--no-foreign-plans", action="store_true",
                   help="with --latency-target/--latency-ms: do not also build and measure the hardware-aware "
                        "points other machines chose for the same request (read from the results store)")
    p.add_argument("--show-latency-table", action="store_true",
                   help="print the per-layer latency table of --backend for this config (measured now unless "
                        "cached) and exit")
    p.add_argument("--tolerance", type=float, default=1.0, metavar="POINTS",
                   help="accuracy points below dense-fp32 a variant may lose to count as 'within' (default 1)")
    add_output_arguments(p)


def check_tolerance(points: float) -> float:
    """--tolerance in accuracy points -> a fraction; UserError unless 0 <= points <= 100."""
    if not math.isfinite(points) or not 0.0 <= points <= 100.0:
        raise UserError(f"--tolerance {points:g}: must be between 0 and 100 accuracy points")
    return points / 100.0


def run(args: argparse.Namespace) -> int:
    from backends.registry import check_name
    from fer.model import arch_of
    from harness.cli._common import json_destinations, load_config_from_args
    from harness.cli.run import check_runnable, publish_run
    from harness.orchestrate import latency_sweep as ls
    from harness.orchestrate.pipeline import load_data, prepare_artifacts, prepare_dense
    from harness.orchestrate.runner import run_grid
    from harness.orchestrate.sweep import (
        BASELINE,
        PAPER_POINT,
        build_points,
        check_reachable,
        parse_grid,
        sweep_info,
    )
    from reports.frontier import compute_frontier

    console.set_quiet(args.quiet)
    json_out = json_destinations(args)
    wants_latency = args.latency_target is not None or args.latency_ms is not None
    sparsity = args.sparsity if args.sparsity is not None or args.macs_reduction is not None else (
        "0.5" if wants_latency else DEFAULT_SPARSITY)  # a latency sweep's baseline: the paper's point
    points = parse_grid(sparsity, args.method, args.precision, args.scope,  # bad flags fail before any work
                        args.macs_reduction)
    tolerance = check_tolerance(args.tolerance)
    cfg = load_config_from_args(args)
    backends = list(dict.fromkeys(check_name(b) for b in (args.backend or cfg.benchmark.backends)))
    precisions = list(dict.fromkeys(p.precision for p in points))
    if args.show_latency_table:
        req = ls.parse_latency(1.0, None, backends, args.latency_group)
        if req is None:
            raise RuntimeError("internal: parse_latency returned None for a given fraction")
        check_runnable([req.backend])
        console.console.print(ls.show_table(cfg, req.backend, ls.table_precision(precisions), req.group,
                                            console.info), markup=False, soft_wrap=True)
        return 0
    latency = ls.parse_latency(args.latency_target, args.latency_ms, backends, args.latency_group)
    if latency is not None and "int8" in precisions and PAPER_POINT not in points:
        points.append(PAPER_POINT)  # the budget and speedup_vs_paper are quoted against it
    check_reachable(cfg, points)  # an unreachable MAC target fails now, not after the points before it were built
    check_runnable(backends)
    data = load_data(cfg)
    dense = prepare_dense(cfg, data, progress=console.info)
    console.info(f"dense model: test accuracy {100 * dense.meta['test_accuracy']:.2f}% ({dense.path})")
    hw = f" + 1 hardware-aware point (latency table on {latency.backend})" if latency is not None else ""
    console.info(f"sweep: {len(points)} points{hw} + {BASELINE} on {', '.join(backends)}")
    paths = dict(prepare_artifacts(cfg, data, dense, variants=[BASELINE], progress=console.info))
    paths.update(build_points(cfg, data, dense.model, points, progress=console.info))
    builds: list[ls.LatencyBuild] = []
    foreign: list[ls.LatencyBuild] = []
    if latency is not None:
        lb = ls.plan_point(cfg, dense.model, data, latency, ls.table_precision(precisions), console.info)
        paths[lb.name] = ls.build_point(cfg, data, dense.model, lb, console.info)
        builds.append(lb)
        if not args.no_foreign_plans:
            foreign = _foreign_builds(cfg, dense.model, lb)
            for fb in foreign:
                paths[fb.name] = ls.build_point(cfg, data, dense.model, fb, console.info)
    # Point names are not config variant names: the grid is given them directly, not through --set.
    bench = dataclasses.replace(cfg.benchmark, backends=backends, variants=list(paths))
    cfg = dataclasses.replace(cfg, benchmark=bench)
    results = run_grid(cfg, paths, data, backends=backends, progress=console.info)
    results["sweep"] = sweep_info(points, tolerance, paths)
    results["sweep"]["points"] += [ls.point_fields(lb) for lb in builds + foreign]
    results["sweep"]["dense_arch"] = arch_of(dense.model)  # what another machine's sweep compares its plans by
    if builds:
        results["sweep"]["latency"] = ls.latency_summary(results, builds, paths, results["sweep"]["paper_point"])
        results["sweep"]["latency"]["foreign"] = foreign_summary(results, builds[0], foreign)
    results["frontier"] = compute_frontier(results, tolerance)
    layers = _layers_csv(paths, results["sweep"]["paper_point"])
    if layers is not None:
        results["layers_csv"] = str(layers)
    publish_run(cfg, results, args, json_out)
    if not json_out[0]:  # --json: stdout holds the JSON document alone
        _print_frontier(results["frontier"], tolerance)
        _print_latency(results["sweep"].get("latency") or {})
    return 0


def _foreign_builds(cfg: Config, dense: VGG16FER, own: LatencyBuild) -> list[LatencyBuild]:
    """The plans other machines chose for this request (same dense arch, point name and backend; from the
    results store, newest first, at most 3), as builds beside this machine's own (harness/orchestrate/
    foreign_plans.py). A store that cannot be read costs the comparison, not the sweep."""
    from fer.model import arch_of
    from harness.history.store import ResultsStore
    from harness.measure.fingerprint import fingerprint
    from harness.orchestrate.foreign_plans import foreign_build, foreign_plans

    here = str(fingerprint(cfg.to_dict()).get("machine_id"))
    try:
        with ResultsStore(cfg.store.url) as store:
            headers = store.headers(exclude_machine=here)
    except UserError as e:
        console.info(f"other machines' choices: the results store could not be read ({e}); none compared")
        return []
    dense_arch = arch_of(dense)
    plans = foreign_plans(headers, here, dense_arch, own.name, str(own.fields["backend"]), own.arch, own.table)
    out = [foreign_build(own, fp, dense_arch) for fp in plans]
    for fp, fb in zip(plans, out, strict=True):
        console.info(f"{fb.name}: the choice of {fp.machine_id} ({fp.hardware}, run {fp.run_id}), rebuilt here: "
                     f"widths {fp.plan.widths}, removed convs {fp.plan.removed or 'none'}; predicted here "
                     f"{fp.plan.predicted_ms:.3f} ms")
    if not out:
        console.info(f"{own.name}: no other machine's choice for it in the store ({cfg.store.url})")
    return out


def _layers_csv(paths: dict[str, Path], paper_point: str | None) -> Path | None:
    """The layer table of the paper's point when the sweep has it, else of the first pruned int8 point."""
    order = ([paper_point] if paper_point else []) + [n for n in paths if n.endswith("-int8") and n != "dense-int8"]
    for name in order:
        csv = paths[name].parent / "layers.csv"
        if csv.is_file():
            return csv
    return None


def _print_frontier(frontier: dict[str, Any], tolerance: float) -> None:
    for backend, f in frontier.items():
        best = f.get("fastest_within_tolerance")
        front = ", ".join(f.get("pareto") or [])
        if best is None:
            console.console.print(f"{backend}: no valid, agreeing variant within the tolerance of dense-fp32's "
                                  f"validation accuracy; Pareto front: {front}", markup=False, soft_wrap=True)
            continue
        speed, ci = best.get("speedup_vs_dense_fp32_torch"), best.get("speedup_ci95")
        speed_txt = (f", {speed:.1f}x" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "") +
                     " vs dense-fp32 torch-eager") if speed else ""
        console.console.print(
            f"{backend}: fastest valid, agreeing variant within {100 * tolerance:g} pt of dense on validation "
            f"accuracy: {best['variant']} — p50 {best['p50_ms']:.3f} ms, test accuracy {100 * best['accuracy']:.2f}%"
            f"{speed_txt}; Pareto front: {front}", markup=False, soft_wrap=True)


def _print_latency(latency: dict[str, Any]) -> None:
    """The machine's chosen architecture, its predicted vs measured latency, and the table's overall error."""
    for name, p in (latency.get("points") or {}).items():
        arch = p.get("architecture") or {}
        meas = _ms(p.get("measured_p50_ms"), p.get("measured_p50_ci_ms"))
        console.console.print(
            f"{name} ({p.get('backend')}, this machine): widths {list((arch.get('widths') or {}).values())} "
            "(0: removed), "
            f"removed {arch.get('removed_layers') or 'none'}; target {p.get('target_ms'):.3f} ms, predicted "
            f"{p.get('predicted_ms'):.3f} ms, measured p50 {meas}", markup=False, soft_wrap=True)
    for f in latency.get("foreign") or []:
        console.console.print(_foreign_line(f), markup=False, soft_wrap=True)
    err = latency.get("median_abs_pct_error")
    if latency:
        console.console.print(
            f"latency table ({latency.get('backend')}): sum of parts vs measured over "
            f"{len(latency.get('sum_of_parts') or [])} point(s), median absolute error "
            f"{'n/a' if err is None else f'{err:.1f}%'}", markup=False, soft_wrap=True)


def _ms(v: float | None, ci: list[float] | None) -> str:
    return "not measured" if v is None else f"{v:.3f} ms" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _foreign_line(f: dict[str, Any]) -> str:
    """Another machine's choice measured here beside this machine's own, and what choosing here paid."""
    who = f.get("chosen_for") or {}
    ratio, ci = f.get("p50_ratio_vs_own"), f.get("p50_ratio_vs_own_ci95")
    level = f.get("p50_ratio_vs_own_ci_level")
    paid = "n/a" if ratio is None else f"{ratio:.2f}x" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "") + (
        f" ({100 * level:.1f}% interval)" if ci and level is not None else "")
    return (f"{f.get('variant')} (chosen for {who.get('machine_id')}, {who.get('hardware')}), measured here: p50 "
            f"{_ms(f.get('measured_p50_ms'), f.get('measured_p50_ci_ms'))}, accuracy val "
            f"{_pct(f.get('val_accuracy'))} test {_pct(f.get('test_accuracy'))}; this machine's "
            f"{f.get('own_variant')}: {_ms(f.get('own_measured_p50_ms'), f.get('own_measured_p50_ci_ms'))}, val "
            f"{_pct(f.get('own_val_accuracy'))} test {_pct(f.get('own_test_accuracy'))}; their p50 / ours {paid} "
            "(above 1: choosing for this machine paid)")


def _latency_rows(results: dict[str, Any], backend: str) -> dict[str, Row]:
    from common.records import as_row

    rows = [as_row(r) for r in results.get("results") or [] if isinstance(r, dict)]
    return {r.variant: r for r in rows if r.backend == backend and r.scenario == "latency" and r.status == "ok"
            and r.p50() is not None}


def foreign_summary(results: dict[str, Any], own: LatencyBuild, builds: list[LatencyBuild]) -> list[dict[str, Any]]:
    """Per other machine's choice, measured here beside this machine's own: p50 with its interval, accuracy
    (validation and test, from the manifests), and foreign p50 / own p50 with its interval over processes and
    that interval's level (reports.frontier's ratio of per-process p50s): above 1, choosing for this machine
    paid that factor."""
    from common.stats.intervals import ratio_ci
    from harness.orchestrate import latency_sweep as ls
    from reports.frontier import process_p50s

    rows = _latency_rows(results, str(own.fields["backend"]))
    facts = (results.get("sweep") or {}).get("artifacts") or {}
    mine = rows.get(own.name)
    out = []
    for lb in builds:
        row = rows.get(lb.name)
        ratio: float | None = None
        ci: list[float] | None = None
        level: float | None = None
        if row is not None and mine is not None:
            r, got, level = ratio_ci(process_p50s(row), process_p50s(mine))  # theirs / ours
            ratio = r if math.isfinite(r) else float(row.p50() or 0.0) / float(mine.p50() or 1.0)
            ci = list(got) if got else None
        own_facts, its = facts.get(own.name) or {}, facts.get(lb.name) or {}
        out.append({
            "variant": lb.name, "own_variant": own.name, "chosen_for": lb.fields["chosen_for"],
            "architecture": ls.point_fields(lb)["architecture"], "predicted_ms_here": round(lb.plan.predicted_ms, 6),
            "measured_p50_ms": row.p50() if row else None, "measured_p50_ci_ms": row.p50_ci_ms if row else None,
            "valid": row.valid if row else None, "val_accuracy": its.get("val_accuracy"),
            "test_accuracy": its.get("test_accuracy"),
            "own_measured_p50_ms": mine.p50() if mine else None,
            "own_measured_p50_ci_ms": mine.p50_ci_ms if mine else None,
            "own_val_accuracy": own_facts.get("val_accuracy"), "own_test_accuracy": own_facts.get("test_accuracy"),
            "p50_ratio_vs_own": ratio, "p50_ratio_vs_own_ci95": ci,
            "p50_ratio_vs_own_ci_level": level,  # the real (Bonferroni) level of that interval, as speedup_ci95's
        })
    return out
