"""`bench history`: stored runs, newest first, with their headline numbers and acceptances; `--changes`: the open
and accepted changes per cell of a run's configuration (the history gate's view)."""

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
    p.add_argument("--changes", nargs="?", const="latest", default=None, metavar="RUN",
                   help="instead: open and accepted changes per cell of RUN's configuration (default latest)")
    p.add_argument("--json", action="store_true", help='print {"runs": [...]} (or the changes) as JSON on stdout')


def run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        set_quiet(True)
    if args.changes is not None:
        return _changes(args)
    with open_store(args) as store:
        runs = store.list_runs(backend=args.backend, variant=args.variant, limit=args.limit)
        accepted: dict[str, list[dict[str, object]]] = {}
        for a in store.acceptances([r["run_id"] for r in runs]):
            accepted.setdefault(str(a["run_id"]), []).append(a)
    for r in runs:
        r["accepted"] = accepted.get(r["run_id"], [])
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
                "disagree", "best p50 ms (b1) [CI] level", "best FPS", "best accuracy", "accepted"):
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
            "; ".join(acceptance_text(a) for a in r["accepted"]),
        )))
    table_console().print(t)
    return 0


def acceptance_text(a: dict[str, object]) -> str:
    """'by ana 2026-01-05T02:00:00Z (openvino/l1-int8): new OpenVINO release' (the cells only when filtered)."""
    cells = "/".join(str(a[k]) for k in ("machine_id", "backend", "variant", "scenario", "batch_size")
                     if a.get(k) is not None)
    return f"by {a.get('who')} {a.get('created')}" + (f" ({cells})" if cells else "") + f": {a.get('reason')}"


def _changes(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from harness.cli._changes import changes_of

    with open_store(args) as store:
        run = store.load_run(args.changes)
        doc = changes_of(store, run)
    if args.json:
        sys.stdout.write(json.dumps(doc) + "\n")
        return 0
    out = table_console()
    t = Table(title=f"open changes per cell, run {doc['run_id']} and {doc['runs'] - 1} earlier run(s) of its "
                    "machine and config")
    for col in ("cell", "verdict", "since run", "change", "detail"):
        t.add_column(col)
    for c in doc["open"]:
        change = f"{100 * c['rel_change']:+.1f}%" if isinstance(c["rel_change"], float) else "n/a"
        t.add_row(escape(c["cell"]), c["verdict"], escape(str(c["since_run"] or "—")), change, escape(c["text"]))
    if doc["open"]:
        out.print(t)
    else:
        console.print(f"no open change in run {doc['run_id']}'s history ({doc['runs']} runs)", markup=False)
    for a in doc["accepted"]:
        console.print(f"accepted at run {a['run_id']} {acceptance_text(a)}", markup=False)
    if not doc["accepted"]:
        console.print("no accepted change in this history", markup=False)
    return 0
