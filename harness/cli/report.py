"""`bench report`: report.md, self-contained report.html and PNG figures of one stored run."""

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


def run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        set_quiet(True)
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
        rows = store.all_results()
        url = store.url
    if not rows:
        raise UserError(f"the results store {url} holds no results; run `bench run` first")
    out = Path(args.out) if args.out else Path(load_config_from_args(args).store.runs_dir) / "compare-hardware"
    for p in write_hardware_report(rows, out):
        console.print(str(p))
    return 0
