"""`bench history`: stored runs, newest first, with their headline numbers."""

from __future__ import annotations

import argparse
import json
import sys

from common.console import console, set_quiet
from harness.cli._common import add_store_arguments, open_store, table_console

NAME = "history"
HELP = "list stored runs with their headline numbers (best p50, best FPS, accuracy)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_arguments(p)
    p.add_argument("--backend", default=None, help="only runs with results of this backend (headlines over it)")
    p.add_argument("--variant", default=None, help="only runs with results of this variant (headlines over it)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N runs (newest first)")
    p.add_argument("--json", action="store_true", help='print {"runs": [...]} as JSON on stdout')


def run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        set_quiet(True)
    with open_store(args) as store:
        runs = store.list_runs(backend=args.backend, variant=args.variant, limit=args.limit)
    if args.json:
        sys.stdout.write(json.dumps({"runs": runs}) + "\n")
        return 0
    from rich.markup import escape
    from rich.table import Table

    from reports.tables import fnum, fpct, with_interval

    if not runs:
        console.print("no stored runs" + (" match the filters" if args.backend or args.variant else ""))
        return 0
    t = Table(title="stored runs (newest first)")
    for col in ("run id", "created", "machines", "fingerprint", "hardware", "data set", "cells ok/all", "invalid",
                "disagree", "best p50 ms (b1) [CI] level", "best FPS", "best accuracy"):
        t.add_column(col)
    for r in runs:
        ds = str(r.get("dataset")) + (" (synthetic)" if r.get("synthetic") else "")
        t.add_row(*(escape(str(x)) for x in (
            r["run_id"], str(r["created"]), ", ".join(r.get("machines") or []), r["fingerprint_id"], r["hardware"], ds,
            f"{r['ok']}/{r['cells']}", str(r["invalid"]), str(r.get("disagree", 0)),
            f"{with_interval(r['best_p50_ms'], r.get('best_p50_ci_ms'), r.get('best_p50_ci_level'))} "
            f"{r['best_p50_cell'] or ''}".strip(),
            f"{fnum(r['best_fps'])} {r['best_fps_cell'] or ''}".strip(),
            f"{fpct(r['best_accuracy'])} {r['best_accuracy_cell'] or ''}".strip(),
        )))
    table_console().print(t)
    return 0
