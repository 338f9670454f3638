"""`bench report`: report.md, self-contained report.html and PNG figures of one stored run; `--history`: a static
site of every cell's history with the regression gate's reading of it (reports/dashboard.py)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common.console import console, info, set_quiet
from common.errors import UserError
from harness.cli._common import add_store_arguments, load_config_from_args, open_store

NAME = "report"
HELP = "write report.md, report.html and figures of a stored run (or a results JSON file)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_arguments(p)
    p.add_argument("run_ref", nargs="?", default="latest", metavar="RUN_ID",
                   help="a stored run id, 'latest' (default), or a results.json file")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: <store.runs_dir>/<run_id>, or <store.runs_dir>/compare-hardware)")
    p.add_argument("--compare-hardware", action="store_true",
                   help="instead of one run: the same variants on every machine in the store, side by side "
                        "(table and figure)")
    p.add_argument("--history", action="store_true",
                   help="instead of one run: a static site (index.html + one page per cell) of every cell's p50 "
                        "over its stored runs with the verdicts, change points and acceptances of "
                        "`bench compare --history` (default --out <store.runs_dir>/site)")
    p.add_argument("--machine", action="append", default=[], metavar="ID",
                   help="--history: only this machine's cells (repeatable)")
    p.add_argument("--backend", action="append", default=[], metavar="NAME",
                   help="--history: only this backend's cells (repeatable)")
    p.add_argument("--model", default=None, metavar="TEXT",
                   help="--history: only cells whose model contains TEXT (e.g. 'x0.25')")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        set_quiet(True)
    if args.history:
        return _history_site(args)
    if args.machine or args.backend or args.model is not None:
        from common.errors import UserError

        raise UserError("--machine, --backend and --model select cells of `bench report --history`; add --history")
    if args.compare_hardware:
        return _compare_hardware(args)
    from common.records import SchemaError, as_run

    with open_store(args) as store:
        raw = store.resolve(args.run_ref)
        try:
            the_run = as_run(raw)  # parsed once; the report reads this typed run
        except SchemaError as e:
            raise UserError(f"{args.run_ref}: not a result file of this bench: {e} (docs/results-schema.md)") from None
        if the_run.run_id in store.run_ids():  # stored: its history's open and accepted changes
            from harness.cli._changes import changes_of

            the_run.gate_changes = changes_of(store, raw)  # the gate reads runs as dicts
    out = Path(args.out) if args.out else Path(load_config_from_args(args).store.runs_dir) / the_run.run_id
    from reports.report import write_report

    t0 = time.perf_counter()
    paths = write_report(the_run, out)
    info(f"report of run {the_run.run_id} written in {time.perf_counter() - t0:.1f} s")
    for p in paths:
        console.print(str(p))
    return 0


def _compare_hardware(args: argparse.Namespace) -> int:
    from reports.hardware import write_hardware_report

    with open_store(args) as store:
        rows = store.all_results_typed()
        url = store.url
    if not rows:
        raise UserError(f"the results store {url} holds no results; run `bench run` first")
    out = Path(args.out) if args.out else Path(load_config_from_args(args).store.runs_dir) / "compare-hardware"
    for p in write_hardware_report(rows, out):
        console.print(str(p))
    return 0


def _history_site(args: argparse.Namespace) -> int:
    from common.errors import UserError
    from harness.cli._dashboard_data import Selection, build_cells
    from reports.dashboard import write_site

    if args.compare_hardware or args.run_ref != "latest":
        raise UserError("--history shows every stored run: give it without a RUN_ID and without --compare-hardware")
    t0 = time.perf_counter()
    with open_store(args) as store:
        cells = build_cells(store, Selection(args.machine, args.backend, args.model))
    out = Path(args.out) if args.out else Path(load_config_from_args(args).store.runs_dir) / "site"
    try:
        paths = write_site(cells, out)
    except OSError as e:  # e.g. a file where the folder should go, or no permission
        raise UserError(f"--out {out}: cannot write the site there ({e.strerror or e})") from None
    info(f"history site of {len(cells)} cell(s) written in {time.perf_counter() - t0:.1f} s")
    console.print(str(paths[0]))
    return 0
