"""`bench gate validate`: the regression gate's false-alarm and detection rates on this machine's stored history.

Replays `bench compare --baseline` and `--history W` on the stored runs of one machine and config (the config of
RUN, default the latest) and on steps planted into them (harness.gate.validate), and prints the table; the
figures of docs/measuring.md come from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from common.console import console, set_quiet
from common.errors import UserError
from harness.cli._common import add_store_arguments, open_store, table_console
from harness.gate import DEFAULT_MARGIN

if TYPE_CHECKING:  # the gate's modules are imported when the command runs (fast `bench --help`)
    from harness.gate.validate import Validation

NAME = "gate"
HELP = "the regression gate's own quality: `bench gate validate` replays it on the stored same-config history"
MIN_RUNS = 6
LOOK_BACK = 1000


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="gate_command", metavar="ACTION", parser_class=type(p))
    sub.required = True
    v = sub.add_parser("validate", help="false alarms of --baseline and --history, detection of planted "
                                        "+5/+10/+20% steps, MDE per cell, from the stored same-config runs")
    add_store_arguments(v)
    v.add_argument("run_ref", nargs="?", default="latest", metavar="RUN",
                   help="the runs of this run's machine and config are replayed (default latest)")
    v.add_argument("--window", type=int, default=10, metavar="W", help="--history W replayed (default 10)")
    v.add_argument("--threshold", type=float, default=0.05, help="practical threshold (default 0.05)")
    v.add_argument("--alpha", type=float, default=0.01, help="false-alarm level of the tests (default 0.01)")
    v.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help="the largest slowdown a 'no change' may hide, as in bench compare (default %(default)s)")
    v.add_argument("--backend", action="append", default=None, help="only this backend's cells (repeatable)")
    v.add_argument("--variant", action="append", default=None, help="only this variant's cells (repeatable)")
    v.add_argument("--json", action="store_true", help="print the validation as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        set_quiet(True)
    if args.window < 4:
        raise UserError(f"--window {args.window}: the history gate needs >= 4 runs")
    with open_store(args) as store:
        ref = store.load_run(args.run_ref)
        runs = store.same_config_runs(ref, LOOK_BACK)
    if len(runs) < MIN_RUNS:
        raise UserError(f"run {ref.get('run_id')}'s machine and config have {len(runs)} stored run(s); validating "
                        f"the gate needs >= {MIN_RUNS} same-config runs (12 over 45 minutes: docs/measuring.md)")
    from harness.gate.validate import common_cells, validate

    cells = {k for k in common_cells(runs) if (not args.backend or k[0] in args.backend)
             and (not args.variant or k[1] in args.variant)}
    if not cells:
        raise UserError("no cell is ok in every one of these runs (or none matches --backend/--variant)")
    res = validate(runs, window=args.window, threshold=args.threshold, alpha=args.alpha, cells=cells,
                   margin=args.margin)
    if args.json:
        sys.stdout.write(json.dumps(res.to_dict()) + "\n")
        return 0
    _print(res, str(ref.get("run_id")), runs)
    return 0


def _pct(x: float | None, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%" if x is not None else "n/a"


def _print(res: Validation, ref_id: str, runs: list[dict[str, object]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from harness.gate.validate import MAX_DELAY, median_delay

    out = table_console()
    first, last = str(runs[0].get("created")), str(runs[-1].get("created"))
    console.print(f"{res.runs} same-config runs of run {ref_id}'s machine and config, {first} .. {last}; "
                  f"{len(res.cells)} cells; threshold {100 * res.threshold:g}%, margin {100 * res.margin:g}%, "
                  f"alpha {res.alpha:g}", markup=False)
    t = Table(title="false alarms per cell comparison (nothing changed between these runs)")
    for col in ("mode", "cell comparisons tested", "false alarms", "rate (goal <= 1%)", "inconclusive"):
        t.add_column(col)
    for m in (res.baseline, res.history):
        t.add_row(m.mode, str(m.tested), str(m.alarms), _pct(m.rate), str(m.inconclusive))
    out.print(t)
    t = Table(title=f"planted steps (whole runs scaled from a point on), --history {res.window}")
    cols = ["step", "plants", *[f"called by slowed run {d + 1}" for d in range(MAX_DELAY)], "median delay",
            "1st slowed run exits non-zero", "--baseline pair calls it"]
    for col in cols:
        t.add_column(col)
    for p in res.plants:
        t.add_row(f"+{100 * (p.factor - 1):.0f}%", str(p.plants),
                  *[_pct(p.found_by[d] / p.plants if p.plants else None, 0) for d in range(MAX_DELAY)],
                  f"{median_delay(p):g}" if median_delay(p) is not None else "n/a",
                  _pct(p.first_nonzero / p.plants if p.plants else None, 0),
                  f"{p.pair_found}/{p.pair_tested}")
    out.print(t)
    t = Table(title="per cell: run-to-run spread and the smallest change each rule detects (90% power)")
    for col in ("cell", "runs", "run-to-run sd", "MDE --baseline", "MDE --history (3 runs after)"):
        t.add_column(col)
    for c in res.cells:
        t.add_row(escape(c.cell), str(c.runs), _pct(c.sigma), _pct(c.mde_baseline), _pct(c.mde_history))
    out.print(t)
