"""`bench compare`: statistical regression gate between runs.

Three modes: `--baseline A --candidate B` (one pair of runs against this machine's A/A noise), `--history N` (the
candidate against its series of runs) and `--paired RUN` (a candidate arm against a reference arm measured
interleaved in one run). Exit 0: every compared cell was tested and none regressed; 1: a regression (or a broken
cell); 3: no regression, but at least one cell was inconclusive (each printed with its reason in one line;
`--allow-inconclusive` makes that 0); 2: bad input. Holm's correction over every test makes `--alpha` the
false-alarm rate of the whole comparison."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, cast

from common.atomic import write_json_atomic
from common.console import info, set_quiet
from common.errors import CheckFailed, UserError
from harness.cli._common import (
    add_json_arguments,
    add_store_arguments,
    json_destinations,
    open_store,
    table_console,
)
from harness.gate import DEFAULT_MARGIN

if TYPE_CHECKING:
    from common.records import Run
    from harness.gate.regression import Comparison
    from harness.history.store import ResultsStore

NAME = "compare"
HISTORY_ALL = 1000  # `--history` without N: look back this many runs at most
AA_LOOKBACK = 30  # --baseline: same-config runs per config read as the A/A history
MAX_REASON_LINES = 12  # inconclusive cells named one per line on stderr; the table and --json hold all
HELP = ("compare runs cell by cell (latency: processes or runs as the unit; accuracy: paired test); exit 1 on a "
        "regression, 3 when a cell could not be tested")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_arguments(p)
    p.add_argument("--baseline", default=None, metavar="RUN", help="baseline: run id, 'latest' or results JSON")
    p.add_argument("--candidate", default=None, metavar="RUN",
                   help="candidate: run id, 'latest' (default) or results JSON")
    p.add_argument("--history", type=int, nargs="?", const=HISTORY_ALL, default=None, metavar="N",
                   help="compare the candidate (default latest) with the previous runs of the same machine, "
                        "fingerprint and config, runs as the unit (change points, outliers set aside, the level "
                        "since the latest `bench accept`); at most N runs (default "
                        f"{HISTORY_ALL}): a regression stays reported while its earlier runs are within N")
    p.add_argument("--paired", default=None, metavar="RUN",
                   help="judge the candidate arm against the reference arm WITHIN one paired run (run id, 'latest' "
                        "or results JSON): both arms ran interleaved in one night, so its drift cancels; per cell "
                        "the fast-mode level (t-test) and the slow-mode share (McNemar on the pairs), Holm across "
                        "cells")
    p.add_argument("--persist", type=int, default=None, help=argparse.SUPPRESS)  # removed; accepted, ignored
    p.add_argument("--threshold", type=float, default=0.05,
                   help="practical threshold: relative p50 change that counts on top of the statistics (default 0.05)")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help="the largest slowdown a pass may hide: a cell is 'no change' only when a slowdown beyond "
                        "it is ruled out at 95%%, else inconclusive (default %(default)s)")
    p.add_argument("--alpha", type=float, default=0.01,
                   help="false-alarm rate of the whole comparison: Holm's correction over every cell's latency and "
                        "accuracy tests (default 0.01)")
    p.add_argument("--allow-hardware-mismatch", action="store_true",
                   help="compare runs with different fingerprints anyway")
    p.add_argument("--allow-inconclusive", action="store_true",
                   help="exit 0 instead of 3 when no cell regressed but some could not be tested")
    add_json_arguments(p)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        set_quiet(True)
    to_stdout, json_path = json_destinations(args)
    modes = [m for m, v in (("--baseline", args.baseline), ("--history", args.history), ("--paired", args.paired))
             if v is not None]
    if len(modes) > 1:
        raise UserError(f"give one of --baseline RUN, --history N or --paired RUN, not {' and '.join(modes)}")
    if not modes:
        raise UserError("nothing to compare: give --baseline RUN [--candidate RUN], --history N or --paired RUN")
    if args.paired is not None:
        if args.candidate is not None:
            raise UserError("--candidate does not go with --paired: the paired run holds both arms")
        return run_paired(args, to_stdout, json_path)
    if args.persist is not None:
        info("warning: --persist is gone: --history now finds change points and outliers (docs/measuring.md)")
    from common.records import as_run

    with open_store(args) as store:
        candidate = store.resolve(args.candidate or "latest")
        cand_run = as_run(candidate)
        baselines: list[Any]
        if args.history is not None:
            # the history is read typed (the store validates each run's JSON once, no dict pass): compare_runs then
            # parses nothing; a cluster run stays on the stored dicts, which per_machine splits (as the dashboard)
            baselines = (store.runs_like(candidate, args.history, samples=False) if _machines_of(candidate)
                         else store.runs_like_typed(cand_run, args.history, samples=False))
            if not baselines:
                raise UserError(
                    f"no earlier stored run has the fingerprint and config of run {cand_run.run_id}; "
                    "nothing to compare with --history"
                )
            accepted = store.acceptances([str(b["run_id"]) if isinstance(b, dict) else b.run_id
                                          for b in baselines] + [cand_run.run_id])
            aa: list[list[dict[str, Any]]] = []
        else:
            baselines = [store.resolve(args.baseline)]
            accepted = []
            aa = aa_history(store, baselines[0], candidate)
    from harness.gate.regression import EXIT_INCONCLUSIVE, cell_label, compare_runs

    regs: list[str] = []
    unsure: list[str] = []
    report: dict[str, Comparison] = {}
    # a cluster run is split per machine on its stored dicts; any other is one part, as per_machine gives it
    parts: list[tuple[str, list[Any], Any]] = [("", baselines, cand_run)]
    if _machines_of(candidate):  # its history was loaded as dicts above
        parts = list(per_machine(cast("list[dict[str, Any]]", baselines), candidate))
    for machine, bases, cand in parts:
        if machine:
            info(f"machine {machine}:")
        mine = [a for a in accepted if not machine or a.get("machine_id") in (None, machine)]
        groups = [[_part(r, machine) if machine else r for r in g] for g in aa]
        cmp = compare_runs(bases, cand, threshold=args.threshold, alpha=args.alpha, margin=args.margin,
                           allow_hardware_mismatch=args.allow_hardware_mismatch, history=args.history is not None,
                           accepted=mine, aa_history=groups)
        for w in cmp.warnings:
            info(f"warning: {w}")
        if not to_stdout:
            print_comparison(cmp, candidate_agreement(cand))
        report[machine] = cmp
        regs += [(f"{machine}: " if machine else "") + cell_label(c.key) for c in cmp.regressions]
        unsure += [(f"{machine}: " if machine else "") + f"{cell_label(c.key)}: {c.why()}" for c in cmp.inconclusive]
    doc: dict[str, Any] = (report[""].to_dict() if list(report) == [""]
                           else {"machines": {m: c.to_dict() for m, c in report.items()}})
    if to_stdout:
        print(json.dumps(doc, indent=2, default=str))
    if json_path is not None:
        write_json_atomic(json_path, doc, indent=2)
    for line in unsure[:MAX_REASON_LINES]:  # the verdict itself: printed also with --quiet
        sys.stderr.write(f"inconclusive: {line}\n")
    if len(unsure) > MAX_REASON_LINES:
        sys.stderr.write(f"inconclusive: ... and {len(unsure) - MAX_REASON_LINES} more cell(s) (the table and "
                         "--json list all)\n")
    if regs:
        names = ", ".join(regs[:5]) + (" ..." if len(regs) > 5 else "")
        raise CheckFailed(f"{len(regs)} regression(s) in run {cand_run.run_id}: {names}")
    if unsure and not args.allow_inconclusive:
        sys.stderr.write(f"{len(unsure)} cell(s) inconclusive, none regressed: exit {EXIT_INCONCLUSIVE} "
                         "(--allow-inconclusive makes this 0)\n")
        return EXIT_INCONCLUSIVE
    return 0


def run_paired(args: argparse.Namespace, to_stdout: bool, json_path: Any) -> int:
    """`--paired RUN`: the candidate arm against the reference arm of one run (harness.gate.paired)."""
    from harness.gate.paired import judge_paired
    from harness.gate.regression import EXIT_INCONCLUSIVE

    with open_store(args) as store:
        run = store.resolve(args.paired)
    res = judge_paired(run, alpha=args.alpha, threshold=args.threshold, margin=args.margin)
    doc = res.to_dict()
    if to_stdout:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print_paired(res)
    if json_path is not None:
        write_json_atomic(json_path, doc, indent=2)
    unsure = [f"{c.label}: {c.reason}" for c in res.inconclusive]
    for line in unsure[:MAX_REASON_LINES]:
        sys.stderr.write(f"inconclusive: {line}\n")
    if len(unsure) > MAX_REASON_LINES:
        sys.stderr.write(f"inconclusive: ... and {len(unsure) - MAX_REASON_LINES} more cell(s) (the table and "
                         "--json list all)\n")
    if res.regressions:
        names = ", ".join(f"{c.label} ({'+'.join(c.judged) or c.verdict})" for c in res.regressions[:5])
        raise CheckFailed(f"{len(res.regressions)} regression(s) in paired run {res.run_id}: {names}"
                          + (" ..." if len(res.regressions) > 5 else ""))
    if unsure and not args.allow_inconclusive:
        sys.stderr.write(f"{len(unsure)} cell(s) inconclusive, none regressed: exit {EXIT_INCONCLUSIVE} "
                         "(--allow-inconclusive makes this 0)\n")
        return EXIT_INCONCLUSIVE
    return 0


def print_paired(res: Any) -> None:
    """The per-cell table of a paired judgement and its family-wise line."""
    from rich.markup import escape
    from rich.table import Table

    from harness.gate.paired import BLOCKS_STATISTIC, LEVEL_STATISTIC, MIX_STATISTIC
    from harness.gate.regression import IMPROVEMENT, INCONCLUSIVE, REGRESSION
    from reports.tables import fnum

    out = table_console()
    t = Table(title=f"paired run {res.run_id}: candidate vs reference arm (threshold {100 * res.threshold:g}%, "
                    f"margin {100 * res.margin:g}%, family-wise alpha {res.alpha:g}, Holm)")
    for col in ("cell", "pairs", "p50 ref ms", "p50 cand ms", "fast ref ms", "fast cand ms", "level [CI]",
                "slow share ref/cand", "p level / mix", "Holm p", "verdict", "judged", "decided by / reason"):
        t.add_column(col)
    style = {REGRESSION: "bold red", IMPROVEMENT: "green", INCONCLUSIVE: "yellow"}
    for c in res.cells:
        lv, mx = c.level, c.mix
        level = (f"{100 * (lv.ratio - 1):+.1f}% [{100 * (lv.low - 1):+.1f}%, {100 * (lv.high - 1):+.1f}%]"
                 if lv else "n/a")
        share = f"{100 * mx.share_ref:.0f}% / {100 * mx.share_cand:.0f}%" if mx else "n/a"
        ps = f"{lv.p_value:.2g} / " if lv else "n/a / "
        ps += f"{mx.p_value:.2g}" if mx else "n/a"
        verdict = f"[{style[c.verdict]}]{c.verdict}[/]" if c.verdict in style else c.verdict
        t.add_row(escape(c.label), str(c.pairs), fnum(c.ref_p50_ms), fnum(c.cand_p50_ms),
                  fnum(c.ref_modes.fast_ms if c.ref_modes else None),
                  fnum(c.cand_modes.fast_ms if c.cand_modes else None), level, share, ps,
                  f"{c.p_adjusted:.2g}" if c.p_adjusted is not None else "n/a", verdict, "+".join(c.judged) or "—",
                  escape(c.decided_by or c.reason))
    out.print(t)
    kinds = {c.interleave for c in res.cells}
    said = []
    if "blocks" in kinds:
        said.append(f"cells timed in shared processes: level = {BLOCKS_STATISTIC}, no mix (the arms share each "
                    "process's mode)")
    if kinds - {"blocks"}:
        said.append(f"cells timed in separate processes: level = {LEVEL_STATISTIC}; mix = {MIX_STATISTIC}")
    out.print(escape(f"{'; '.join(said)}; {res.family()}"))
    out.print(f"{len(res.regressions)} regression(s), {len(res.inconclusive)} inconclusive, "
              f"{len(res.cells)} cells judged")


def aa_history(store: ResultsStore, baseline: dict[str, Any], candidate: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The A/A history of a one-pair comparison: the stored same-machine runs of the baseline's config (the
    baseline among them) and, if the candidate's config differs, of the candidate's, never the candidate itself;
    at most AA_LOOKBACK runs each, without raw samples."""
    from common.results import config_hash, machine_id

    cand_id = str(candidate.get("run_id"))
    group = store.same_config_runs(baseline, AA_LOOKBACK, exclude=(cand_id,))
    if str(baseline.get("run_id")) not in {str(r.get("run_id")) for r in group} and \
            str(baseline.get("run_id")) != cand_id:
        group.append(baseline)  # a baseline from a results file: part of its own A/A group
    groups = [group]
    if (config_hash(candidate), machine_id(candidate)) != (config_hash(baseline), machine_id(baseline)):
        groups.append(store.same_config_runs(candidate, AA_LOOKBACK, exclude=(cand_id,)))
    return [g for g in groups if g]


def _machines_of(run: dict[str, Any]) -> list[str]:
    """The machine ids a cluster run's rows name ([] for a run measured on one machine)."""
    if not isinstance(run.get("machines"), dict):
        return []
    return list(dict.fromkeys(str(r["machine_id"]) for r in run.get("results", []) if r.get("machine_id")))


def _part(run: dict[str, Any], machine: str) -> dict[str, Any]:
    fp = (run["machines"].get(machine) or {}).get("fingerprint") or run.get("fingerprint")
    return {**run, "fingerprint": fp, "results": [r for r in run.get("results", []) if r.get("machine_id") == machine]}


def per_machine(baselines: list[dict[str, Any]], candidate: dict[str, Any]
                ) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """(machine, baselines, candidate) to compare: a cluster run is compared machine by machine, each with the
    same machine's rows of the baselines (its own fingerprint), never across machines."""
    machines = _machines_of(candidate)
    if not machines:
        return [("", baselines, candidate)]
    out = []
    for m in machines:
        bases = [_part(b, m) for b in baselines if m in _machines_of(b)]
        if not bases:
            info(f"machine {m}: no baseline run measured it; not compared")
            continue
        out.append((m, bases, _part(candidate, m)))
    if not out:
        raise UserError(f"no baseline measured any machine of run {candidate.get('run_id')} "
                        f"({', '.join(machines)}); nothing to compare")
    return out




def candidate_agreement(run: Run | dict[str, Any]) -> dict[tuple[str, str, str, str, int], str]:
    """Cell key -> the candidate row's agreement with the PyTorch reference ("99.3%", "60.0% ✗ ..."; "—")."""
    from common.records import as_run
    from common.results import is_reference
    from harness.gate.regression import cell_key
    from reports.labels import agreement_cell

    out = {}
    for r in as_run(run).results:
        if is_reference(r):  # the reference arm has no agreement of its own; its candidate's is the cell's
            continue
        out[cell_key(r)] = agreement_cell(r) + (" disagrees" if r.agrees is False else "")
    return out


def print_comparison(cmp: Comparison, agreement: dict[tuple[str, str, str, str, int], str] | None = None) -> None:
    """The per-cell table (with the candidate's agreement with the reference) and a one-line summary."""
    from rich.markup import escape
    from rich.table import Table

    from harness.gate.regression import IMPROVEMENT, INCONCLUSIVE, LEVEL_STATISTIC, REGRESSION, cell_label
    from reports.tables import fnum, fpct

    base = ", ".join(cmp.baseline_ids[:3]) + (f" (+{len(cmp.baseline_ids) - 3})" if len(cmp.baseline_ids) > 3 else "")
    out = table_console()
    t = Table(title=f"candidate {cmp.candidate_id} vs baseline {base} "
                    f"(threshold {100 * cmp.threshold:g}%, margin {100 * cmp.margin:g}%, alpha {cmp.alpha:g})")
    for col in ("cell", "unit", "p50 base ms", "p50 cand ms", "level base/cand ms", "change [CI] level",
                "slow share base/cand (Fisher p, not gating)", "latency", "A/A false alarms",
                "MDE (90% power)", "p (MWU, diagnostic)", "acc base", "acc cand", "accuracy", "agree cand",
                "decided by / notes"):
        t.add_column(col)
    style = {REGRESSION: "bold red", IMPROVEMENT: "green", INCONCLUSIVE: "yellow"}
    skipped = [c for c in cmp.cells if not c.compared]
    for c in cmp.cells:
        if c in skipped:
            continue
        change = f"{100 * c.rel_change:+.1f}%" if c.rel_change is not None else "n/a"
        if c.ratio_ci:
            change += f" [{100 * (c.ratio_ci[0] - 1):+.1f}%, {100 * (c.ratio_ci[1] - 1):+.1f}%]"
            change += f" {100 * c.ci_level:.4g}%" if c.ci_level else ""
        aa = f"{c.aa_false_alarms}/{c.aa_pairs}" if c.aa_pairs else f"n/a ({c.aa_runs} runs)"
        aa += f", {c.aa_inconclusive} unsure" if c.aa_inconclusive else ""
        mde = f"{100 * c.mde:.1f}%" if c.mde is not None else "n/a"
        unit = {"processes": f"processes {c.base_processes}/{c.cand_processes}",
                "runs": f"runs {len(c.series_ms or [])}"}.get(c.method, "")
        pval = f"{c.p_value:.2g}" if c.p_value is not None else "n/a"
        lat = c.latency
        acc = c.accuracy
        level = f"{fnum(c.base_level_ms)} / {fnum(c.cand_level_ms)}"
        mix = (f"{100 * c.mix.share_ref:.0f}% / {100 * c.mix.share_cand:.0f}% (p={c.mix.p_value:.2g})"
               if c.mix else "n/a")
        t.add_row(
            escape(cell_label(c.key)), unit, fnum(c.base_p50_ms), fnum(c.cand_p50_ms), level, change, mix,
            f"[{style[lat.split(' ')[0]]}]{lat}[/]" if lat.split(" ")[0] in style else lat, aa, mde, pval,
            fpct(c.base_accuracy), fpct(c.cand_accuracy),
            f"[{style[acc]}]{acc}[/]" if acc in style else acc,
            escape((agreement or {}).get(c.key, "—")),
            escape("; ".join(x for x in (c.decided_by, c.why(), c.accuracy_decided_by, *c.notes) if x)),
        )
    out.print(t)
    n_imp = sum(1 for c in cmp.cells if IMPROVEMENT in (c.latency, c.accuracy))
    if skipped:
        out.print(escape(f"{len(skipped)} cell(s) ran in neither run (e.g. {cell_label(skipped[0].key)}: "
                         f"{skipped[0].cand_status}); not compared"))
    out.print(f"{len(cmp.regressions)} regression(s), {len(cmp.inconclusive)} inconclusive, {n_imp} improvement(s), "
              f"{len(cmp.cells) - len(skipped)} cells compared")
    out.print(escape(f"latency judged on the {LEVEL_STATISTIC} (p50 columns: the median, the typical figure); "
                     f"{cmp.family()}"))
