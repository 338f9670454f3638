"""`bench select`: which backend x variant x hardware to deploy under the given constraints."""

from __future__ import annotations

import argparse
import json
import math
import sys

from rich.markup import escape
from rich.table import Table

from common.console import set_quiet
from common.errors import CheckFailed, UserError
from harness.cli._common import add_store_arguments, open_store, table_console
from reports.select import (
    DEFAULT_TOLERANCE,
    OBJECTIVES,
    Choice,
    Constraints,
    Selection,
    filter_rows,
    parse_min_accuracy,
    select,
)

NAME = "select"
HELP = "recommend a backend x variant x hardware from all stored results under latency/accuracy/storage limits"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_arguments(p)
    p.add_argument("--max-latency-ms", type=float, default=None, metavar="X",
                   help="the p99 latency at the chosen batch size must not exceed X ms")
    p.add_argument("--min-accuracy", type=float, default=None, metavar="Y",
                   help="minimum top-1 accuracy: a fraction (0.85) or a percentage (85)")
    p.add_argument("--max-storage-mb", type=float, default=None, metavar="Z",
                   help="maximum size in MB of the file(s) the backend loads (on disk; not the parameter formula)")
    p.add_argument("--batch", type=int, default=1, metavar="N", help="deployment batch size (default 1)")
    p.add_argument("--objective", default="latency", choices=OBJECTIVES,
                   help="rank feasible choices by lowest p50 latency, highest throughput or smallest storage")
    p.add_argument("--machine", action="append", default=None, metavar="ID",
                   help="only results measured on this machine id (repeatable)")
    p.add_argument("--target", action="append", default=None, metavar="NAME",
                   help="only results measured on cluster nodes of this hardware target (repeatable)")
    p.add_argument("--model", action="append", default=None, metavar="TEXT",
                   help="only results of this model, as rows name it (e.g. 'VGG16-FER x0.25'; repeatable)")
    p.add_argument("--artifact-sha", action="append", default=None, metavar="PREFIX",
                   help="only results that timed the model file whose sha256 starts with PREFIX (repeatable)")
    p.add_argument("--tolerance", type=float, default=100 * DEFAULT_TOLERANCE, metavar="POINTS",
                   help="without --min-accuracy: validation accuracy must be within POINTS accuracy points of "
                        "the dense model of the same model (default 1)")
    p.add_argument("--allow-unverified", action="store_true",
                   help="also consider rows whose outputs were never compared with a reference (agrees unknown); "
                        "they are marked UNVERIFIED")
    p.add_argument("--json", action="store_true", help="print the selection as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        set_quiet(True)
    constraints = Constraints(
        max_latency_ms=args.max_latency_ms, min_accuracy=parse_min_accuracy(args.min_accuracy),
        max_storage_mb=args.max_storage_mb, batch=args.batch, objective=args.objective,
        allow_unverified=args.allow_unverified, tolerance=_tolerance(args.tolerance),
    )
    with open_store(args) as store:
        rows = store.all_results_typed()
        url = store.url
    if not rows:
        raise UserError(f"the results store {url} holds no results; run `bench run` first")
    rows = filter_rows(rows, args.machine, args.target, args.model, args.artifact_sha)
    sel = select(rows, constraints)
    if args.json:
        sys.stdout.write(json.dumps(sel.to_dict()) + "\n")
    else:
        print_selection(sel)
    if sel.recommended is None:
        raise CheckFailed(sel.message)
    return 0


def _tolerance(points: float) -> float:
    """--tolerance in accuracy points -> a fraction; UserError unless 0 <= points <= 100."""
    if not (math.isfinite(points) and 0.0 <= points <= 100.0):
        raise UserError(f"--tolerance {points:g}: must be between 0 and 100 accuracy points")
    return points / 100.0


def _row(ch: Choice) -> list[str]:
    from reports.tables import fnum, fpct

    machine = ch.machine_id + (f" ({ch.target})" if ch.target else "")
    model = (ch.model or "not recorded") + (f" {ch.artifact_sha256[:12]}" if ch.artifact_sha256 else "")
    p50 = fnum(ch.p50_ms) + (f" [{fnum(ch.p50_ci_ms[0])}, {fnum(ch.p50_ci_ms[1])}]" if ch.p50_ci_ms else "")
    cells = [ch.backend + (f"[{ch.device}]" if ch.device not in ("", "cpu") else ""), ch.variant, model,
             ch.settings,
             machine, ch.hardware,
             p50, fnum(ch.p99_ms), fnum(ch.throughput_fps), fpct(ch.accuracy), fpct(ch.val_accuracy),
             {True: "agrees", False: "DISAGREES", None: "UNVERIFIED"}[ch.agrees],
             fnum(ch.storage_mb) + ("" if ch.storage_source == "file" else " (params)"), ch.run_id]
    return [escape(c) for c in cells]


def print_selection(sel: Selection) -> None:
    """Ranked and rejected choices as tables, then the recommendation or why nothing fits."""
    cols = ("backend", "variant", "model, artifact sha", "settings", "machine", "hardware", "p50 ms [CI]",
            "p99 ms", "FPS", "accuracy", "val accuracy", "vs reference", "file MB", "run")
    if sel.ranked:
        t = Table(title=f"feasible choices at batch {sel.constraints.batch}, by {sel.constraints.objective}")
        t.add_column("#")
        for c in cols:
            t.add_column(c)
        t.add_column("why not first")
        for i, ch in enumerate(sel.ranked):
            why = escape(sel.lost.get(i, "recommended"))
            tie = " (tie)" if i in sel.indistinguishable else ""
            t.add_row(str(i + 1) + tie, *_row(ch), why, style="bold green" if i == 0 else "")
        table_console().print(t)
    if sel.rejected:
        t = Table(title="rejected")
        for c in cols:
            t.add_column(c)
        t.add_column("why")
        for ch, why in sel.rejected:
            t.add_row(*_row(ch), escape(why))
        table_console().print(t)
    table_console().print(escape(sel.message))
