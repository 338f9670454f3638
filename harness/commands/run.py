"""`bench run`: prepare missing artifacts (train, compress; cached), run the backend x variant grid,
store the run, write runs/<run_id>/ (results.json + report) and print a summary."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from common import console
from common.atomic import write_text_atomic
from common.config import Config, check_variant_name
from common.errors import UserError
from harness.cli import add_config_arguments

NAME = "run"
HELP = "benchmark the same compressed files on every backend: accuracy, latency, throughput, storage, memory"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--variant", action="append", default=None, metavar="NAME",
                   help="run only this variant (repeatable), e.g. l1-int8")
    add_output_arguments(p)


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """--backend, --json, --no-store, --no-report: the flags of every command that runs the grid."""
    p.add_argument("--backend", action="append", default=None, metavar="NAME",
                   help="run only this backend (repeatable): torch-eager, openvino, onnxruntime, tensorrt")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results JSON here")
    p.add_argument("--no-store", action="store_true", help="do not add the run to the results history")
    p.add_argument("--no-report", action="store_true", help="do not render the report into runs/<run_id>/")


def _selected(args: argparse.Namespace, cfg: Config) -> tuple[list[str], list[str]]:
    from backends.registry import check_name

    backends = [check_name(b) for b in (args.backend or cfg.benchmark.backends)]
    variants = list(args.variant or cfg.benchmark.variants)
    for v in variants:
        check_variant_name("--variant", v)
    return list(dict.fromkeys(backends)), list(dict.fromkeys(variants))


def check_runnable(backends: list[str]) -> None:
    """When no requested backend can run here, say why in one line instead of failing later."""
    from backends.registry import probe

    avail = {b: probe(b) for b in backends}
    if not any(a.available for a in avail.values()):
        reasons = "; ".join(a.reason or f"{b}: unavailable" for b, a in avail.items())
        raise UserError(f"no requested backend can run on this machine: {reasons}")
    for b, a in avail.items():
        if not a.available:
            console.info(f"{b} unavailable: {a.reason} (the other backends run)")


def _point_latest(runs_dir: Path, run_id: str) -> None:
    """runs/latest -> runs/<run_id>, replaced atomically (a symlink swapped in with rename)."""
    tmp = runs_dir / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_id, target_is_directory=True)
    os.replace(tmp, runs_dir / "latest")


def run(args: argparse.Namespace) -> int:
    from harness.commands._common import load_config_from_args
    from harness.pipeline import load_data, prepare_artifacts, prepare_dense
    from harness.runner import run_grid

    console.set_quiet(args.quiet)
    cfg = load_config_from_args(args)
    backends, variants = _selected(args, cfg)
    # The grid runs exactly what was asked for: --backend/--variant narrow the config's lists.
    cfg = dataclasses.replace(cfg, benchmark=dataclasses.replace(cfg.benchmark, backends=backends, variants=variants))
    check_runnable(backends)
    data = load_data(cfg)
    dense = prepare_dense(cfg, data, progress=console.info)
    console.info(f"dense model: test accuracy {100 * dense.meta['test_accuracy']:.2f}% ({dense.path})")
    artifacts = prepare_artifacts(cfg, data, dense, variants=variants, progress=console.info)
    results = run_grid(cfg, artifacts, data, backends=backends, progress=console.info)
    layers_csv = next((p.parent / "layers.csv" for p in artifacts.values() if (p.parent / "layers.csv").is_file()),
                      None)
    if layers_csv is not None:
        results["layers_csv"] = str(layers_csv)
    publish_run(cfg, results, args)
    return 0


def publish_run(cfg: Config, results: dict[str, Any], args: argparse.Namespace) -> Path:
    """Write runs/<run_id>/results.json (and --json), store it (unless --no-store), render the report (unless
    --no-report), point runs/latest at it and print the summary; shared by `bench run` and `bench sweep`."""
    runs_dir = Path(cfg.store.runs_dir)
    run_dir = runs_dir / results["run_id"]
    run_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1, default=str)
    write_text_atomic(run_dir / "results.json", text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.json, text)
    if not args.no_store:
        from harness.store import ResultsStore

        ResultsStore(cfg.store.url).save_run(results)
    if not args.no_report:
        from reports.report import write_report

        write_report(results, run_dir)
    _point_latest(runs_dir, results["run_id"])
    _print_summary(results)
    console.info(f"run {results['run_id']} written to {run_dir}")
    return run_dir


def _cell(rows: list[dict[str, Any]], scenario: str) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("scenario") == scenario]


def _print_summary(results: dict[str, Any]) -> None:
    rows = results["results"]
    ref = next((r for r in rows if r["backend"] == "torch-eager" and r["variant"] == "dense-fp32"
                and r.get("scenario") == "latency" and r.get("status") == "ok"), None)
    synthetic = " — synthetic data (SynthFER)" if results.get("synthetic") else ""
    table = Table(title=f"bench run {results['run_id']} on {results.get('dataset', '?')}{synthetic}")
    cols = ("backend", "variant", "acc %", "p50 ms", "p99 ms", "best FPS", "storage MB", "ratio",
            "speedup", "valid")
    for c in cols:
        table.add_column(c, justify="left" if c in ("backend", "variant", "valid") else "right")
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["backend"], r["variant"]), []).append(r)
    not_run: dict[str, str] = {}
    for (backend, variant), group in cells.items():
        lat = next(iter(_cell(group, "latency")), group[0])
        if lat.get("status") != "ok":
            if lat.get("status") == "unavailable":
                not_run[backend] = str(lat.get("reason", ""))
                continue
            table.add_row(backend, variant, *["—"] * 7, escape(f"{lat.get('status')}: {lat.get('reason', '')}"[:70]))
            continue
        fps = [r.get("throughput_fps") or 0 for r in group if r.get("status") == "ok"]
        p50 = lat["latency_ms"]["p50"]
        speedup = f"{ref['latency_ms']['p50'] / p50:.1f}x" if ref else "—"
        invalid = [r for r in group if r.get("status") == "ok" and not r.get("valid")]
        first = next((x for r in invalid for x in r.get("invalid_reasons") or []), "")
        verdict = "VALID" if not invalid else f"INVALID ({len(invalid)}/{len(group)} rows): {first}"[:70]
        acc = lat.get("accuracy")
        table.add_row(
            backend, variant, f"{100 * acc:.2f}" if acc is not None else "—", f"{p50:.3f}",
            f"{lat['latency_ms']['p99']:.3f}", f"{max(fps):.0f}", f"{lat.get('storage_mb', 0):.2f}",
            f"{lat.get('compression_ratio', 0):.1f}x", speedup, escape(verdict),
        )
    console.console.print(table)
    for backend, reason in not_run.items():
        console.console.print(f"{backend}: unavailable — {reason}", markup=False)
    console.console.print(f"harness overhead: {results.get('harness_overhead_us', 0):.2f} µs per iteration")
