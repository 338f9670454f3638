"""`bench gate validate`: the regression gate's false-alarm and detection rates on this machine's stored history.

Replays `bench compare --baseline` and `--history W` on the stored runs of one machine and config (the config of
RUN, default the latest) and on steps planted into them (harness.gate.validate), and prints the table; the
figures of docs/measuring.md come from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

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
    v.add_argument("--paired", action="store_true",
                   help="validate `bench compare --paired` on the stored paired runs of RUN's config (A/A: both "
                        "arms the same code): false alarms per night, detection of the candidate arm slowed")
    v.add_argument("--slowed", action="append", default=[], metavar="RUN=FACTOR",
                   help="a stored run whose candidate is a slowdown built as a file (benchmarks/slowdown.py), e.g. "
                        "20261207T0300Z-ab12cd=1.10: judged as measured detection, left out of the A/A runs "
                        "(repeatable)")
    v.add_argument("--json", action="store_true", help="print the validation as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        set_quiet(True)
    if args.window < 4:
        raise UserError(f"--window {args.window}: the history gate needs >= 4 runs")
    slowed = _parse_slowed(args.slowed)
    with open_store(args) as store:
        ref = store.load_run(args.run_ref)
        runs = store.same_config_runs(ref, LOOK_BACK)
        real = [(f, store.load_run(rid)) for rid, f in slowed.items()]
    # stored runs as the store gives them (dicts: validate scales copies of them); run_id is a store column, always set
    real_ids = {str(r["run_id"]) for _, r in real}
    runs = [r for r in runs if str(r["run_id"]) not in real_ids]  # a slowed run is not an A/A night
    if args.paired:
        return _run_paired(args, ref, runs, real)
    if len(runs) < MIN_RUNS:
        raise UserError(f"run {ref['run_id']}'s machine and config have {len(runs)} stored run(s); validating "
                        f"the gate needs >= {MIN_RUNS} same-config runs (12 over 45 minutes: docs/measuring.md)")
    from harness.gate.validate import common_cells, validate

    cells = {k for k in common_cells(runs) if (not args.backend or k[0] in args.backend)
             and (not args.variant or k[1] in args.variant)}
    if not cells:
        raise UserError("no cell is ok in every one of these runs (or none matches --backend/--variant)")
    res = validate(runs, window=args.window, threshold=args.threshold, alpha=args.alpha, cells=cells,
                   margin=args.margin, real=real)
    if args.json:
        sys.stdout.write(json.dumps(res.to_dict()) + "\n")
        return 0
    _print(res, str(ref["run_id"]), runs)
    return 0


def _parse_slowed(items: list[str]) -> dict[str, float]:
    """--slowed RUN=FACTOR values -> {run id: factor}; one error line naming the flag for a bad one."""
    out: dict[str, float] = {}
    for item in items:
        rid, _, f = item.partition("=")
        try:
            factor = float(f)
        except ValueError:
            factor = 0.0
        if not rid or factor <= 1.0:
            raise UserError(f"--slowed {item!r}: expected RUN=FACTOR with FACTOR > 1, e.g. 20261207T0300Z-ab12cd=1.1")
        out[rid] = factor
    return out


def _run_paired(args: argparse.Namespace, ref: dict[str, Any], runs: list[dict[str, Any]],
                real: list[tuple[float, dict[str, Any]]]) -> int:
    from harness.gate.paired import REFERENCE, arm
    from harness.gate.validate import validate_paired

    paired = [r for r in runs if any(arm(x) == REFERENCE for x in r["results"])]
    if not paired:
        raise UserError(f"run {ref['run_id']}'s machine and config have no stored paired run (rows with arm = "
                        "'reference'); --paired validates the paired gate on them")
    res = validate_paired(paired, alpha=args.alpha, threshold=args.threshold, margin=args.margin, real=real)
    if args.json:
        sys.stdout.write(json.dumps(res.to_dict()) + "\n")
        return 0
    from rich.table import Table

    out = table_console()
    console.print(f"{res.runs} paired A/A run(s) of run {ref.get('run_id')}'s machine and config; threshold "
                  f"{100 * res.threshold:g}%, margin {100 * res.margin:g}%, family-wise alpha {res.alpha:g} (Holm "
                  "across cells)", markup=False)
    t = Table(title="false alarms (both arms the same code)")
    for col in ("unit", "judged", "false alarms", "rate [95% CP]", "inconclusive"):
        t.add_column(col)
    t.add_row("night (whole comparison; goal <= alpha)", str(res.runs), str(res.nights_alarmed),
              _rate(res.nights_alarmed, res.runs), "")
    t.add_row("cell", str(res.cells), str(res.alarms), _rate(res.alarms, res.cells), str(res.inconclusive))
    out.print(t)
    t = Table(title="detection: candidate arm slowed (planted: stored numbers scaled; measured: real runs)")
    for col in ("step", "cells", "called a regression [95% CP]", "same event unslowed [95% CP]", "inconclusive"):
        t.add_column(col)
    null = next((p for p in res.plants if p.factor == 1.0 and not p.real), None)
    for p in res.plants:
        if p is null:
            continue
        t.add_row(f"+{100 * (p.factor - 1):.0f}%" + (" (measured)" if p.real else ""), str(p.plants),
                  _rate(p.pair_found, p.plants), _rate(null.pair_found, null.plants) if null else "n/a",
                  str(p.pair_inconclusive))
    out.print(t)
    return 0


def _pct(x: float | None, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%" if x is not None else "n/a"


def _rate(k: int, n: int, digits: int = 1) -> str:
    """k/n as a percentage with its Clopper-Pearson 95% interval."""
    from harness.gate.validate import clopper_pearson

    ci = clopper_pearson(k, n)
    if ci is None:
        return "n/a"
    return f"{100 * k / n:.{digits}f}% [{100 * ci[0]:.{digits}f}, {100 * ci[1]:.{digits}f}]"


def _print(res: Validation, ref_id: str, runs: list[dict[str, object]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from harness.gate.validate import MAX_DELAY, MDE_GRID, MDE_POWER, median_delay

    out = table_console()
    first, last = str(runs[0]["created"]), str(runs[-1]["created"])  # store columns: always set
    console.print(f"{res.runs} same-config runs of run {ref_id}'s machine and config, {first} .. {last}; "
                  f"{len(res.cells)} cells; threshold {100 * res.threshold:g}%, margin {100 * res.margin:g}%, "
                  f"family-wise alpha {res.alpha:g} (Holm over every test of a comparison)", markup=False)
    t = Table(title="false alarms (nothing changed between these runs); rates over every comparison asked, "
                    "inconclusive ones included; [95% Clopper-Pearson]")
    for col in ("mode", "comparisons", "false alarms", "rate per cell", "nights", "nights with any alarm",
                "rate per night (goal <= alpha)", "inconclusive"):
        t.add_column(col)
    for m in (res.baseline, res.history):
        t.add_row(m.mode, str(m.judged), str(m.alarms), _rate(m.alarms, m.judged), str(m.nights),
                  str(m.nights_alarmed), _rate(m.nights_alarmed, m.nights), str(m.inconclusive))
    out.print(t)
    null = res.null
    t = Table(title=f"planted steps (whole runs scaled from a point on), --history {res.window}; beside each "
                    "rate the same event on the unslowed runs")
    cols = ["step", "plants", *[f"called by slowed run {d + 1}" for d in range(MAX_DELAY)], "median delay",
            "1st slowed run exits non-zero", "--baseline pair calls it", "pair inconclusive"]
    for col in cols:
        t.add_column(col)

    def both(k: int, p_n: int, k0: int | None) -> str:
        return _rate(k, p_n, 0) + (f" | unslowed {_rate(k0, null.plants, 0)}" if null and k0 is not None else "")

    for p in res.plants:
        if p is null:
            continue
        label = f"+{100 * (p.factor - 1):.0f}%" + (" (measured)" if p.real else "")
        t.add_row(label, str(p.plants),
                  *[both(p.found_by[d], p.plants, null.found_by[d] if null else None) for d in range(MAX_DELAY)],
                  f"{median_delay(p):g}" if median_delay(p) is not None else "n/a",
                  both(p.first_nonzero, p.plants, null.first_nonzero if null else None),
                  both(p.pair_found, p.plants, null.pair_found if null else None), str(p.pair_inconclusive))
    out.print(t)
    grid = "/".join(f"+{100 * (f - 1):.0f}%" for f in MDE_GRID)
    t = Table(title=f"per cell: run-to-run sd of the level and the smallest planted step ({grid}) each rule "
                    f"calls in >= {100 * MDE_POWER:.0f}% of onsets (replayed, not a formula)")
    for col in ("cell", "runs", "run-to-run sd", "MDE --baseline", "MDE --history (3 runs after)"):
        t.add_column(col)
    for c in res.cells:
        t.add_row(escape(c.cell), str(c.runs), _pct(c.sigma),
                  _pct(c.mde_baseline, 0) if c.mde_baseline is not None else f"> {grid.split('/')[-1]}",
                  _pct(c.mde_history, 0) if c.mde_history is not None else f"> {grid.split('/')[-1]}")
    out.print(t)
