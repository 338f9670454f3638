"""`bench run`: prepare missing artifacts (train, compress; cached), run the backend x variant grid,
store the run, write runs/<run_id>/ (results.json + report) and print a summary."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from common import console
from common.atomic import write_text_atomic
from common.config import Config, check_variant_name
from common.errors import UserError
from common.records import Row, Run, as_row, as_run
from common.results import REFERENCE_BACKEND, REFERENCE_VARIANT, hardware_summary
from harness.cli._common import add_config_arguments, add_json_arguments, json_destinations, table_console
from reports.int8_path import int8_path_text
from reports.labels import agreement_cell, mb, peak_cell, peak_text, precision_cell

if TYPE_CHECKING:
    from harness.orchestrate.reference import ReferenceArm
    from harness.orchestrate.runner import MoreRounds

NAME = "run"
HELP = "benchmark the same compressed files on every backend: accuracy, latency, throughput, storage, memory"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--variant", action="append", default=None, metavar="NAME",
                   help="run only this variant (repeatable), e.g. l1-int8")
    p.add_argument("--artifact", action="append", default=None, type=Path, metavar="DIR",
                   help="benchmark this artifact directory (repeatable): from `bench compress --out` or "
                        "`bench import`; alone it replaces the configured variants, with --variant it runs beside them")
    add_output_arguments(p)
    p.add_argument("--cluster", default=None, metavar="HOST:PORT",
                   help="run the cells on the benchmark nodes of this Ray cluster (needs the cluster extra)")
    p.add_argument("--target", action="append", default=None, metavar="NAME",
                   help="with --cluster: a hardware target to measure on (repeatable), as given to "
                        "`bench worker start --target`")
    p.add_argument("--machine-id", default=None, metavar="ID",
                   help="name this machine in the history (default: machine.id, else derived from the hardware)")
    add_reference_arguments(p)


def add_reference_arguments(p: argparse.ArgumentParser) -> None:
    """--reference, --reference-set, --max-extra-rounds, --paired-time-cap-s: a reference arm measured beside the
    candidate in every round (harness.orchestrate.reference), and rounds added while a cell is inconclusive."""
    p.add_argument("--reference", default=None, metavar="REF",
                   help="measure REF beside the candidate in every round, in fresh processes, in ABBA order: an "
                        "artifact directory (the reference of every variant), a directory of them named by variant "
                        "(REF/<variant>), or 'accepted' (each cell's files kept by `bench accept`)")
    p.add_argument("--reference-set", action="append", default=[], metavar="KEY=VALUE",
                   help="the reference arm runs under this setting (repeatable), e.g. benchmark.threads=1; alone, "
                        "the reference is the candidate's own files under these settings")
    p.add_argument("--interleave", choices=("blocks", "processes"), default=None,
                   help="how the arms share the machine: 'blocks' (default with --reference): both files in one "
                        "process per round, timed in alternating blocks, so both sit in the process's latency mode; "
                        "'processes' (the only choice with --reference-set): each arm in its own process, back to "
                        "back in ABBA order")
    p.add_argument("--max-extra-rounds", type=int, default=0, metavar="N",
                   help="add up to N rounds to cells whose comparison is still inconclusive (default 0)")
    p.add_argument("--paired-time-cap-s", type=float, default=None, metavar="S",
                   help="with --max-extra-rounds: add no round that would take the added rounds past S seconds")


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """--backend, --json, --json-out, --no-store, --no-report: the flags of every command that runs the grid."""
    from backends.registry import backend_names

    p.add_argument("--backend", action="append", default=None, metavar="NAME",
                   help=f"run only this backend (repeatable): {', '.join(backend_names())}")
    add_json_arguments(p)
    p.add_argument("--no-store", action="store_true", help="do not add the run to the results history")
    p.add_argument("--no-report", action="store_true", help="do not render the report into runs/<run_id>/")


def _selected(args: argparse.Namespace, cfg: Config) -> tuple[list[str], list[str]]:
    from backends.registry import check_name

    backends = [check_name(b) for b in (args.backend or cfg.benchmark.backends)]
    variants = list(args.variant or cfg.benchmark.variants)
    for v in variants:
        check_variant_name("--variant", v)
    return list(dict.fromkeys(backends)), list(dict.fromkeys(variants))


def artifacts_by_path(dirs: list[Path], taken: list[str]) -> dict[str, Path]:
    """{name: dir} for `--artifact` directories, each verified (manifest, sizes, sha256) before anything runs.

    The name is the manifest's variant; where that collides with a configured variant or another directory,
    the directory's name is appended (`l1-int8@mydir`) so every cell stays distinct.
    """
    from backends.artifact import load_artifact

    out: dict[str, Path] = {}
    for d in dirs:
        art = load_artifact(d)  # UserError: not an artifact, or a file does not match its hash
        name = art.variant
        if name in out or name in taken:
            name = f"{name}@{d.resolve().name}"
        if name in out:
            raise UserError(f"--artifact {d}: given twice")
        out[name] = d.resolve()
    return out


def reference_arm(args: argparse.Namespace, cfg: Config, extra: list[str], backends: list[str],
                  variants: list[str]) -> ReferenceArm | None:
    """The reference arm that --reference / --reference-set ask for (None without them), resolved and verified
    before anything runs: one `error:` line for a REF that is not there."""
    from backends.registry import resolve_config
    from harness.cli._common import load_config_from_args
    from harness.measure.settings import cell_settings
    from harness.orchestrate.kept_artifacts import default_artifacts_dir
    from harness.orchestrate.reference import (
        ReferenceArm,
        accepted_artifacts,
        dir_artifacts,
        parse_reference_sets,
    )

    ref = getattr(args, "reference", None)
    sets = list(getattr(args, "reference_set", None) or [])
    if ref is None and not sets:
        if getattr(args, "interleave", None):
            raise UserError("--interleave says how a reference arm shares the machine: give --reference DIR|accepted")
        return None
    if ref is not None and not str(ref).strip():
        raise UserError("--reference: give an artifact directory, a directory of them named by variant, or 'accepted'")
    if getattr(args, "cluster", None):
        raise UserError("--reference runs on this machine only; drop --cluster, or --reference/--reference-set")
    settings = parse_reference_sets(sets) or None
    interleave = getattr(args, "interleave", None) or ("processes" if settings else "blocks")
    if interleave == "blocks" and settings:
        raise UserError("--interleave blocks: the arms share one process, so they cannot differ in "
                        f"{', '.join(settings)}; use --interleave processes with --reference-set")
    ref_cfg = load_config_from_args(args, [*extra, *sets])
    ref_cfg = resolve_config(dataclasses.replace(
        ref_cfg, benchmark=dataclasses.replace(ref_cfg.benchmark, backends=backends, variants=variants)))
    cell, threads = cell_settings(ref_cfg), int(ref_cfg.benchmark.threads)
    if ref is None:
        return ReferenceArm("settings", None, settings, cell, threads, {}, interleave)
    if ref == "accepted":
        from harness.history.store import ResultsStore

        kept = default_artifacts_dir(cfg.store.url, cfg.store.runs_dir, cfg.store.artifacts_dir)
        with ResultsStore(cfg.store.url) as store:
            acceptances = store.acceptances()
        if not acceptances:
            raise UserError(f"--reference accepted: the results store {cfg.store.url} holds no acceptance; "
                            'accept a run first: `bench accept RUN --reason "..."` (it keeps the run\'s artifact '
                            "files for later reference runs)")
        found = accepted_artifacts(acceptances, kept, cfg.store.url, backends, variants)
        return ReferenceArm("accepted", str(kept), settings, cell, threads, found, interleave)
    found = dir_artifacts(Path(ref), backends, variants)
    return ReferenceArm("dir", str(Path(ref).resolve()), settings, cell, threads, found, interleave)


def more_rounds(args: argparse.Namespace) -> MoreRounds | None:
    """--max-extra-rounds / --paired-time-cap-s -> the runner's MoreRounds (None for 0 extra rounds)."""
    from harness.orchestrate.runner import MoreRounds

    n = int(getattr(args, "max_extra_rounds", 0) or 0)
    cap = getattr(args, "paired_time_cap_s", None)
    if n < 0:
        raise UserError(f"--max-extra-rounds {n}: must be 0 or a positive number of rounds")
    if cap is not None and not cap > 0:
        raise UserError(f"--paired-time-cap-s {cap:g}: must be a positive number of seconds")
    if n and not getattr(args, "reference", None) and not getattr(args, "reference_set", None):
        raise UserError("--max-extra-rounds adds pairs while the paired gate cannot decide a cell: give --reference "
                        "DIR|accepted or --reference-set KEY=VALUE")
    if n and getattr(args, "cluster", None):
        raise UserError("--max-extra-rounds runs on this machine only; drop --cluster or --max-extra-rounds")
    if n == 0:
        if cap is not None:
            raise UserError("--paired-time-cap-s caps the rounds --max-extra-rounds N adds; give --max-extra-rounds")
        return None
    return MoreRounds(needs_more=inconclusive_judge(), max_extra_rounds=n, time_cap_s=cap)


def inconclusive_judge() -> Callable[[list[dict[str, Any]]], bool]:
    """The judge of `needs_more`: does `bench compare --paired` find this cell (its rows of both arms)
    inconclusive? The same function the gate uses (harness.gate.paired), so rounds are added exactly while the
    gate could not decide, as Pinpoint adds repeats while its answer is UNKNOWN."""
    from harness.gate.paired import inconclusive_cells

    return lambda rows: bool(inconclusive_cells({"run_id": "in progress", "results": rows}))


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
    from harness.cli._common import load_config_from_args, toml_string
    from harness.orchestrate.pipeline import load_data, prepare_artifacts, prepare_dense
    from harness.orchestrate.runner import run_grid

    console.set_quiet(args.quiet)
    to_stdout, json_path = json_destinations(args)
    if args.target and not args.cluster:
        raise UserError("--target needs --cluster HOST:PORT (targets are nodes of a Ray cluster)")
    if args.cluster:
        from harness.fleet.cluster import import_ray

        import_ray()  # one line naming the extra before any work is done
        if not args.target:
            raise UserError("--cluster needs at least one --target NAME (a node started with `bench worker start`)")
    extra = [f"machine.id={toml_string(args.machine_id)}"] if args.machine_id else []
    cfg = load_config_from_args(args, extra)
    backends, variants = _selected(args, cfg)
    if args.artifact and not args.variant:
        variants = []  # --artifact alone: only the given directories
    extra_arts = artifacts_by_path(args.artifact or [], variants)
    reference = reference_arm(args, cfg, extra, backends, variants + list(extra_arts))
    more = more_rounds(args)
    # The grid runs exactly what was asked for: --backend/--variant narrow the config's lists.
    if not args.cluster:  # on a cluster each node probes its own runtimes
        check_runnable(backends)
    with console.phase("data"):
        data = load_data(cfg)
    artifacts: dict[str, Path] = {}
    if variants:
        with console.phase("training"):
            dense = prepare_dense(cfg, data, progress=console.info, then_compress=variants)
        console.info(f"dense model: test accuracy {100 * dense.meta['test_accuracy']:.2f}% ({dense.path})")
        with console.phase("compression"):
            artifacts = prepare_artifacts(cfg, data, dense, variants=variants, progress=console.info)
    artifacts.update(extra_arts)
    variants = variants + list(extra_arts)
    cfg = dataclasses.replace(cfg, benchmark=dataclasses.replace(cfg.benchmark, backends=backends, variants=variants))
    with console.phase("grid"):
        if args.cluster:
            from harness.fleet.cluster import run_grid_cluster

            results = run_grid_cluster(cfg, artifacts, data, args.cluster, args.target, backends=backends,
                                       progress=console.info)
        else:
            results = run_grid(cfg, artifacts, data, backends=backends, progress=console.info, reference=reference,
                               more=more)
    from harness.orchestrate.kept_artifacts import run_artifacts

    results["artifacts"] = run_artifacts(artifacts)  # what `bench accept` keeps for `--reference accepted`
    layers_csv = next((p.parent / "layers.csv" for p in artifacts.values() if (p.parent / "layers.csv").is_file()),
                      None)
    if layers_csv is not None:
        results["layers_csv"] = str(layers_csv)
    results["phase_seconds"] = {name: round(sec, 1) for name, sec in console.phase_times()}
    with console.phase("report"):
        publish_run(cfg, results, args, (to_stdout, json_path))
    console.info(console.phase_summary())
    return 0


def publish_run(cfg: Config, results: dict[str, Any], args: argparse.Namespace,
                json_out: tuple[bool, Path | None]) -> Path:
    """Write runs/<run_id>/results.json (and --json-out), store it (unless --no-store), render the report (unless
    --no-report), point runs/latest at it and print the summary (or the JSON with --json); shared by `bench run`
    and `bench sweep`. `json_out` is `json_destinations(args)`, read before any work is done."""
    to_stdout, json_path = json_out
    runs_dir = Path(cfg.store.runs_dir)
    run_dir = runs_dir / results["run_id"]
    run_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1, default=str)
    write_text_atomic(run_dir / "results.json", text)
    if json_path is not None:
        write_text_atomic(json_path, text)
    if not args.no_store:
        from harness.history.store import ResultsStore

        ResultsStore(cfg.store.url).save_run(results)
    if not args.no_report:
        from reports.report import write_report

        write_report(results, run_dir)
    _point_latest(runs_dir, results["run_id"])
    if to_stdout:
        print(text)
    else:
        _print_summary(results)
    console.info(f"run {results['run_id']} written to {run_dir}")
    return run_dir


def _cell(rows: list[Row], scenario: str) -> list[Row]:
    return [r for r in rows if r.scenario == scenario]


def _num(v: Any, fmt: str) -> str:
    """A number formatted, or — where the manifest has none (an imported ONNX has no compression ratio)."""
    return fmt.format(v) if isinstance(v, int | float) else "—"


def _print_summary(results: Run | dict[str, Any]) -> None:
    """The console summary of a run: one line per cell (its latency row, the cell's best throughput), then the
    harness's own costs, the reference arm, the machine's roofs and the int8 path. The run is typed once here."""
    from reports.tables import processes, with_interval

    run = as_run(results)
    rows = [r for r in run.results if r.arm != "reference"]  # the table is the candidate's
    ref = next((r for r in rows if r.backend == REFERENCE_BACKEND and r.variant == REFERENCE_VARIANT
                and r.scenario == "latency" and r.status == "ok"), None)
    ref_p50 = ref.p50() if ref is not None else None
    synthetic = " — synthetic data (SynthFER)" if run.synthetic else ""
    models = ", ".join(sorted({r.model for r in rows if r.model})) or "model not recorded"
    where = hardware_summary(run.fingerprint.model_dump(exclude_unset=True) if run.fingerprint is not None else None)
    table = Table(title=f"bench run {run.run_id}: {models} on {where}, {run.dataset or '?'} data{synthetic}")
    cols = ("backend", "variant", "precision", "acc %", "agree", "p50 ms [CI] level", "p99 ms [CI] level", "processes",
            "best FPS", "param MB", "file MB", "% roof b1/bN", "ratio", "speedup", "valid")
    for c in cols:
        table.add_column(c, justify="left" if c in ("backend", "variant", "precision", "valid") else "right")
    cells: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        at = f"@{r.target}" if r.target else ""  # a cluster run: one line per target
        cells.setdefault((r.backend + at, r.variant), []).append(r)
    not_run: dict[str, str] = {}
    for (backend, variant), group in cells.items():
        lat = next(iter(_cell(group, "latency")), group[0])
        if lat.status != "ok":
            if lat.status == "unavailable":
                not_run[backend] = lat.reason or ""
                continue
            table.add_row(backend, variant, *["—"] * (len(cols) - 3),
                          escape(f"{lat.status}: {lat.reason or ''}"[:70]))
            continue
        fps = [r.throughput_fps or 0 for r in group if r.status == "ok"]
        p50 = lat.p50()
        speedup = f"{ref_p50 / p50:.1f}x" if ref_p50 is not None and p50 else "—"
        invalid = [r for r in group if r.status == "ok" and not r.valid]
        first = next((x for r in invalid for x in r.invalid_reasons or []), "")
        verdict = "VALID" if not invalid else f"INVALID ({len(invalid)}/{len(group)} rows): {first}"[:70]
        if lat.agrees is False:
            verdict = f"DISAGREES: {lat.agreement_reason or ''}"[:70]
        acc = lat.accuracy
        table.add_row(
            backend, variant, escape(precision_cell(lat)), f"{100 * acc:.2f}" if acc is not None else "—",
            agreement_cell(lat), with_interval(p50, lat.p50_ci_ms, lat.p50_ci_level),
            with_interval(lat.latency_ms.p99 if lat.latency_ms is not None else None, lat.p99_ci_ms,
                          lat.p99_ci_level), processes(lat),
            f"{max(fps):.0f}",
            _num(lat.storage_mb, "{:.2f}"), mb(lat.file_bytes), peak_cell(group),
            _num(lat.compression_ratio, "{:.1f}x"), speedup, escape(verdict),
        )
    table_console().print(table)  # on a pipe: wide, so 15 columns keep their headers
    for backend, reason in not_run.items():
        console.console.print(f"{backend}: unavailable — {reason}", markup=False)
    console.console.print(f"harness overhead: {run.harness_overhead_us or 0:.2f} µs per iteration")
    fixed = [r.fixed_cost_s for r in rows if r.scenario == "latency" and r.fixed_cost_s is not None]
    if fixed:
        n = run.rounds.count if run.rounds is not None else 1
        console.console.print(f"fixed cost per process (start, imports, load, compile, exit; median over cells): "
                              f"{sorted(fixed)[len(fixed) // 2]:.1f} s, paid {n}x per cell "
                              f"({n} rounds, cell order shuffled per round; {fixed_by_round(rows)}); "
                              "accuracy in one untimed process per cell")

    arm_text = reference_text(run)
    if arm_text:
        console.console.print(arm_text, markup=False)
    text = peak_text(run.machine_peak_gmac_per_s)
    if text:
        console.console.print(f"machine roofs: {text}", markup=False)
    console.console.print(f"int8 path: {int8_path_text(run)}", markup=False)


def reference_text(results: Run | dict[str, Any]) -> str:
    """The reference arm in lines: what it was and each cell's latency p50 in both arms, measured in the same
    rounds (numbers only: `bench compare --paired` judges them)."""
    run = as_run(results)
    ref = run.reference
    if ref is None:
        return ""
    what = ref.path or "the candidate's files"
    if ref.settings:
        what += " under " + ", ".join(f"{k}={v}" for k, v in ref.settings.items())
    how = ("both arms in one process per round, timed in alternating blocks" if ref.interleave == "blocks"
           else "each of its processes ran back to back with the candidate's (ABBA order)")
    lines = [f"reference arm ({ref.kind}): {what}; {how}"]
    lat = {(r.arm, r.backend, r.variant): r for r in run.results if r.scenario == "latency" and r.status == "ok"}
    for (arm, backend, variant), r in lat.items():
        other = lat.get(("reference", backend, variant))
        if arm != "candidate" or other is None:
            continue
        lines.append(f"  {backend} {variant}: p50 {r.p50():.3f} ms candidate, {other.p50():.3f} ms reference "
                     f"({len(r.rounds or [])} + {len(other.rounds or [])} processes)")
    return "\n".join(lines)


def fixed_by_round(rows: Sequence[Row | dict[str, Any]]) -> str:
    """"round 1 1.6 s, round 2 1.5 s": the median fixed cost of each round's processes over the latency rows (the
    processes of a cell do the same work before timing, so the rounds should match within noise)."""
    per: dict[int, list[float]] = {}
    for r in map(as_row, rows):
        if r.scenario != "latency":
            continue
        for p in r.rounds or []:
            if p.fixed_s is not None:
                per.setdefault(p.round, []).append(p.fixed_s)
    return ", ".join(f"round {k + 1} {statistics.median(v):.1f} s" for k, v in sorted(per.items()))
