"""`bench compare`: statistical regression gate between runs (exit 1 on a regression)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.atomic import write_json_atomic
from common.console import info, set_quiet
from common.errors import CheckFailed, UserError
from harness.commands._common import add_store_arguments, open_store, table_console

if TYPE_CHECKING:
    from harness.regression import Comparison

NAME = "compare"
HELP = "compare runs cell by cell (Mann-Whitney U + threshold on latency, CI on accuracy); exit 1 on regression"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_arguments(p)
    p.add_argument("--baseline", default=None, metavar="RUN", help="baseline: run id, 'latest' or results JSON")
    p.add_argument("--candidate", default=None, metavar="RUN",
                   help="candidate: run id, 'latest' (default) or results JSON")
    p.add_argument("--history", type=int, default=None, metavar="N",
                   help="compare the candidate (default latest) with the previous N runs of the same "
                        "fingerprint and config, their samples pooled")
    p.add_argument("--threshold", type=float, default=0.05,
                   help="practical threshold: relative p50 change that counts (default 0.05 = 5%%)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the tests (default 0.05)")
    p.add_argument("--allow-hardware-mismatch", action="store_true",
                   help="compare runs with different fingerprints anyway")
    p.add_argument("--json", dest="json_out", default=None, metavar="OUT", help="write the comparison as JSON")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        set_quiet(True)
    if args.history is not None and args.baseline is not None:
        raise UserError("give either --baseline RUN or --history N, not both")
    if args.history is None and args.baseline is None:
        raise UserError("nothing to compare: give --baseline RUN [--candidate RUN] or --history N")
    with open_store(args) as store:
        candidate = store.resolve(args.candidate or "latest")
        if args.history is not None:
            baselines = store.runs_like(candidate, args.history)
            if not baselines:
                raise UserError(
                    f"no earlier stored run has the fingerprint and config of run {candidate.get('run_id')}; "
                    "nothing to compare with --history"
                )
        else:
            baselines = [store.resolve(args.baseline)]
    from harness.regression import cell_label, compare_runs

    cmp = compare_runs(baselines, candidate, threshold=args.threshold, alpha=args.alpha,
                       allow_hardware_mismatch=args.allow_hardware_mismatch)
    for w in cmp.warnings:
        info(f"warning: {w}")
    print_comparison(cmp, candidate_agreement(candidate))
    if args.json_out:
        _write_json(Path(args.json_out), cmp)
    regs = cmp.regressions
    if regs:
        names = ", ".join(cell_label(c.key) for c in regs[:5]) + (" ..." if len(regs) > 5 else "")
        raise CheckFailed(f"{len(regs)} regression(s) in run {cmp.candidate_id}: {names}")
    return 0


def _write_json(path: Path, cmp: Comparison) -> None:
    write_json_atomic(path, cmp.to_dict(), indent=2)


def candidate_agreement(run: dict[str, Any]) -> dict[tuple[str, str, str, str, int], str]:
    """Cell key -> the candidate row's agreement with the PyTorch reference ("99.3%", "60.0% ✗ ..."; "—")."""
    from harness.regression import cell_key
    from reports.labels import agreement_cell

    out = {}
    for r in run.get("results") or []:
        out[cell_key(r)] = agreement_cell(r) + (" disagrees" if r.get("agrees") is False else "")
    return out


def print_comparison(cmp: Comparison, agreement: dict[tuple[str, str, str, str, int], str] | None = None) -> None:
    """The per-cell table (with the candidate's agreement with the reference) and a one-line summary."""
    from rich.markup import escape
    from rich.table import Table

    from harness.regression import IMPROVEMENT, REGRESSION, cell_label
    from reports.tables import fnum, fpct

    base = ", ".join(cmp.baseline_ids[:3]) + (f" (+{len(cmp.baseline_ids) - 3})" if len(cmp.baseline_ids) > 3 else "")
    out = table_console()
    t = Table(title=f"candidate {cmp.candidate_id} vs baseline {base} "
                    f"(threshold {100 * cmp.threshold:g}%, alpha {cmp.alpha:g})")
    for col in ("cell", "p50 base ms", "p50 cand ms", "change", "p (MWU)", "latency", "acc base", "acc cand",
                "accuracy", "agree cand", "notes"):
        t.add_column(col)
    style = {REGRESSION: "bold red", IMPROVEMENT: "green"}
    skipped = [c for c in cmp.cells if c.base_status not in (None, "ok") and c.cand_status not in (None, "ok")]
    for c in cmp.cells:
        if c in skipped:
            continue
        change = f"{100 * c.rel_change:+.1f}%" if c.rel_change is not None else "n/a"
        pval = f"{c.p_value:.2g}" if c.p_value is not None else "n/a"
        lat = c.latency
        acc = c.accuracy
        t.add_row(
            escape(cell_label(c.key)), fnum(c.base_p50_ms), fnum(c.cand_p50_ms), change, pval,
            f"[{style.get(lat.split(' ')[0], '')}]{lat}[/]" if lat.startswith(REGRESSION) or lat == IMPROVEMENT
            else lat,
            fpct(c.base_accuracy), fpct(c.cand_accuracy),
            f"[{style[acc]}]{acc}[/]" if acc in style else acc,
            escape((agreement or {}).get(c.key, "—")),
            escape("; ".join(c.notes)),
        )
    out.print(t)
    n_imp = sum(1 for c in cmp.cells if IMPROVEMENT in (c.latency, c.accuracy))
    if skipped:
        out.print(escape(f"{len(skipped)} cell(s) ran in neither run (e.g. {cell_label(skipped[0].key)}: "
                         f"{skipped[0].cand_status}); not compared"))
    out.print(f"{len(cmp.regressions)} regression(s), {n_imp} improvement(s), {len(cmp.cells)} cells")
