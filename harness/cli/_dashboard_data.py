"""Store -> gate -> the dashboard's plain inputs (`reports.dashboard_model.CellHistory`), for
`bench report --history`.

Same truth as the gate: every configuration's (machine, fingerprint, config) newest run is compared with its stored
history exactly as `bench compare --history` does it (`store.runs_like_typed`, `store.acceptances`,
`harness.cli.compare.per_machine`, `harness.gate.regression.compare_runs`), and the verdicts, change points,
outliers and reference levels drawn are read from that comparison, never recomputed here. The accuracy verdict of an
older run is the gate's own paired test (`compare_cells` on that run against its reference run, the first since the
latest acceptance), as the gate would have given it had that run been the candidate.

Runs are read typed (`ResultsStore.load_run_typed`, `runs_like_typed`: each stored row's JSON validated once,
straight into a `common.records.Row`) and handed to the gate as they are, so nothing is parsed twice; a cluster
run is split per machine on its stored dicts by `per_machine` (as `bench compare --history` does) and each part
typed once. The dicts left are the store's run summaries and acceptance records and a run's free-form blocks
(config, a cluster run's machines, a fingerprint's git), which the records do not type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common.errors import UserError
from common.records import Fingerprint, Row, Run, as_row, as_run
from reports.dashboard_model import UNKNOWN_MODEL, Acceptance, CellHistory, RunPoint

if TYPE_CHECKING:
    from harness.gate.regression import CellComparison, CellKey
    from harness.history.store import ResultsStore

THRESHOLD = 0.05  # `bench compare`'s default practical threshold: the dashboard shows the nightly gate's reading
REFERENCE_ARM = "reference"
_FILTERS = ("backend", "variant", "device", "scenario", "batch_size")


@dataclass
class Selection:
    """What `bench report --history` was asked to show (empty = everything)."""

    machines: Sequence[str] = ()
    backends: Sequence[str] = ()
    model: str | None = None


def model_of(row: Row | dict[str, Any], run: Run | dict[str, Any]) -> str:
    """The row's model ("VGG16-FER x0.25"): its own `model`, else the run's configured width, else unknown."""
    m = as_row(row).model
    if m and m.strip():
        return m.strip()
    model = (as_run(run).config or {}).get("model")  # the resolved config, a free-form dict by section
    width = model.get("width") if isinstance(model, dict) else None
    if isinstance(width, int | float) and not isinstance(width, bool):
        return f"VGG16-FER x{width:g}"
    return UNKNOWN_MODEL


def _git(fp: Fingerprint | dict[str, Any] | None) -> dict[str, Any]:
    """A fingerprint's `git` block ({commit, dirty}; free-form, not a declared field of `Fingerprint`)."""
    git = fp.get("git") if isinstance(fp, dict) else getattr(fp, "git", None)
    return git if isinstance(git, dict) else {}


def _commit(row: Row, run: Run) -> str:
    """The git commit the row's machine ran (its fingerprint's; "+dirty" for uncommitted changes): a cluster row's
    node's (`machines[row.machine_id].fingerprint`, as `common.results.row_machine` finds it), else the run's."""
    node = (run.machines or {}).get(row.machine_id) if row.machine_id else None
    for fp in (node.get("fingerprint") if isinstance(node, dict) else None, run.fingerprint):
        git = _git(fp)
        if git.get("commit"):
            return str(git["commit"]) + ("+dirty" if git.get("dirty") else "")
    return ""


def _point(row: Row, run: Run, commits: dict[tuple[str, str | None], str]) -> RunPoint:
    """The run's numbers of a cell; p50_ms stays None here: `_fill_p50` sets the gate's own run value.
    `commits`: per (run, machine), the commit found for an earlier row (every row of a run names the same one)."""
    memo = (run.run_id, row.machine_id)
    if memo not in commits:
        commits[memo] = _commit(row, run)
    ci = row.p50_ci_ms
    rounds = row.rounds or []
    ok = row.status == "ok"
    p99 = row.latency_ms.p99 if row.latency_ms is not None else None
    return RunPoint(
        run_id=run.run_id, created=run.created, commit=commits[memo], status=row.status,
        p50_ci_ms=(float(ci[0]), float(ci[1])) if ok and ci is not None and len(ci) == 2 else None,
        p50_ci_level=row.p50_ci_level, p99_ms=p99 if ok else None,
        valid=row.valid is not False, invalid_reasons=[str(x) for x in row.invalid_reasons or []],
        noisy=sum(1 for r in rounds if r.noisy), processes=len(rounds),
        accuracy=row.accuracy if ok else None,
    )


def _applies(a: Mapping[str, Any], key: CellKey, machine: str) -> bool:
    """Whether a stored acceptance covers this cell (its filters, as the gate's `accepted_start` reads them)."""
    if a.get("machine_id") not in (None, "", machine):
        return False
    return all(a.get(n) in (None, "", v) for n, v in zip(_FILTERS, key, strict=True))


def _scope(a: Mapping[str, Any]) -> str:
    return "/".join(str(a[k]) for k in ("machine_id", *_FILTERS) if a.get(k) not in (None, ""))


_ACCURACY_FIELDS = ("backend", "variant", "device", "scenario", "batch_size", "status", "accuracy", "confusion",
                   "correct_bits")  # what the gate's paired accuracy test reads of a row


def _accuracy_verdicts(key: CellKey, rows: list[tuple[Row, RunPoint]],
                       accepted: Sequence[Mapping[str, Any]], newest: CellComparison | None) -> None:
    """Each run's accuracy verdict by the gate's paired test against its reference run (the first ok run since the
    latest acceptance of this cell at or before it); the newest run's is the gate's own.

    `compare_cells` gets the accuracy fields only (no latency: its history half stops at once) and a verdict is
    reused for a run whose fields equal an earlier run's against the same reference: inference is deterministic,
    so most runs score the same images the same way, and 1,000 runs x 100 cells stay seconds, not minutes."""
    from harness.gate.regression import accepted_start, compare_cells

    ok = [(r, p) for r, p in rows if r.status == "ok"]
    ids = [p.run_id for _, p in ok]
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    # the gate's rule of which acceptance covers this cell, asked run by run ("" is never a run id: 1 = accepted),
    # so that each run's reference is found in one pass rather than one pass per run
    covered = [accepted_start(key, ["", rid], accepted) == 1 for rid in ids] if accepted else [False] * len(ids)
    start = 0
    for i, (row, p) in enumerate(ok):
        if covered[i]:
            start = i
        if p.accuracy is None:
            continue
        if newest is not None and i == len(ok) - 1 and newest.cand_accuracy is not None:
            p.accuracy_verdict = newest.accuracy
            p.accuracy_text = newest.accuracy_decided_by or newest.accuracy_reason
            continue
        if start == i:
            p.accuracy_verdict, p.accuracy_text = "reference", "the paired tests' reference run"
            continue
        mine = {k: getattr(row, k) for k in _ACCURACY_FIELDS}
        memo = (ids[start], repr(mine))
        if memo not in seen:
            ref = {**{k: getattr(ok[start][0], k) for k in _ACCURACY_FIELDS}, "_run_id": ids[start]}
            (c,) = [c for c in compare_cells([ref], [{**mine, "_run_id": p.run_id}], threshold=THRESHOLD,
                                             history=True, quality=False) if c.key == key]
            seen[memo] = (c.accuracy, c.accuracy_decided_by or c.accuracy_reason)
        p.accuracy_verdict, p.accuracy_text = seen[memo]


def _cells_of(machine: str, runs: list[Run], cmp_cells: Sequence[CellComparison] | None,
              accepted: Sequence[Mapping[str, Any]], fingerprint: str, config: str, why_none: str
              ) -> list[CellHistory]:
    """The CellHistory of every measured cell of one machine's series of runs (oldest first, the candidate last),
    with the gate's comparison `cmp_cells` (None: no earlier run, no verdict: `why_none` says why)."""
    from harness.gate.regression import INCONCLUSIVE, NOT_MEASURED, cell_key, run_p50

    rows: dict[CellKey, list[tuple[Row, RunPoint]]] = {}
    refs: dict[tuple[str, CellKey], float] = {}
    commits: dict[tuple[str, str | None], str] = {}
    models: dict[CellKey, str] = {}
    for run in runs:
        for row in run.results:
            key = cell_key(row)
            if row.arm == REFERENCE_ARM:  # the paired reference arm: a ratio, not a point of the cell
                if row.status == "ok" and (v := run_p50(row)):
                    refs[(run.run_id, key)] = v
                continue
            rows.setdefault(key, []).append((row, _point(row, run, commits)))
            models[key] = model_of(row, run)
    by_key = {c.key: c for c in cmp_cells or ()}
    paired = {k for _, k in refs}
    out = []
    for key, pairs in rows.items():
        cc = by_key.get(key)
        points = [p for _, p in pairs]
        _fill_p50(pairs, cc, key in paired)
        if all(p.p50_ms is None for p in points) or (cc is not None and cc.latency == NOT_MEASURED):
            continue  # never measured here (e.g. TensorRT without a GPU): nothing to draw
        for p in points:
            ref = refs.get((p.run_id, key))
            p.ratio = p.p50_ms / ref if p.p50_ms is not None and ref else None
        backend, variant, device, scenario, batch = key
        cell = CellHistory(machine=machine, model=models[key], backend=backend, variant=variant, device=device,
                           scenario=scenario, batch_size=batch, config_hash=config, fingerprint_id=fingerprint,
                           points=points)
        cell.accepted = [Acceptance(str(a.get("run_id")), str(a.get("who")), str(a.get("reason")),
                                    str(a.get("created")), _scope(a))
                         for a in accepted if _applies(a, key, machine)
                         and any(p.run_id == a.get("run_id") for p in points)]
        if cc is None:
            cell.verdict, cell.verdict_text = INCONCLUSIVE, why_none
        else:
            _read_gate(cell, cc)
        _accuracy_verdicts(key, pairs, accepted, cc)
        out.append(cell)
    return out


def _fill_p50(pairs: list[tuple[Row, RunPoint]], cc: CellComparison | None, paired: bool) -> None:
    """Each run's p50 of the cell: the gate's own series value where the run is in it (`run_p50`, the median of
    the row's per-process p50s; taken from the comparison, not computed twice), else `run_p50` of the row. Not
    with a paired reference arm: the gate's cell key does not tell the arms apart, so its series may hold both."""
    from harness.gate.regression import run_p50

    series = dict(zip(cc.series_runs or [], cc.series_ms or [], strict=False)) if cc and not paired else {}
    for row, p in pairs:
        if p.status == "ok":
            p.p50_ms = series[p.run_id] if p.run_id in series else run_p50(row)


def _read_gate(cell: CellHistory, cc: CellComparison) -> None:
    """Copy the gate's verdict and marks (indices into its series) onto the cell as run ids."""
    cell.verdict = cc.latency
    cell.verdict_text = cc.decided_by if cc.decided_by and not cc.why() else (cc.why() or cc.decided_by)
    cell.rel_change = cc.rel_change
    cell.accuracy_verdict = cc.accuracy
    hv, ids = cc.history, cc.series_runs or []
    if hv is None:
        return
    cell.rel_ci = hv.ci
    cell.change_points = [ids[i] for i in hv.change_points if i < len(ids)]
    cell.outliers = [ids[i] for i in hv.outliers if i < len(ids)]
    cell.since = ids[hv.since] if hv.since is not None and hv.since < len(ids) else None
    if hv.reference and hv.reference[1] - 1 < len(ids):
        cell.reference = (ids[hv.reference[0]], ids[hv.reference[1] - 1])
    in_series = set(ids)
    for p in cell.points:
        p.in_series = p.run_id in in_series


def _groups(store: ResultsStore) -> list[dict[str, Any]]:
    """The newest stored run summary of each (machine, fingerprint, config): the candidates the gate judges."""
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for s in store.list_runs():  # newest first
        seen.setdefault((str(s["machine_id"]), str(s["fingerprint_id"]), str(s["config_hash"])), s)
    return list(seen.values())


def build_cells(store: ResultsStore, sel: Selection, threshold: float = THRESHOLD) -> list[CellHistory]:
    """Every cell's history and the gate's reading of it, from the store alone; UserError on an empty store or a
    filter that matches nothing (naming what there is)."""
    from harness.cli.compare import HISTORY_ALL
    from harness.gate.history import MIN_HISTORY
    from harness.gate.regression import compare_runs

    groups = _groups(store)
    if not groups:
        raise UserError(f"the results store {store.url} holds no runs; run `bench run` first (or give --store)")
    known = sorted({m for g in groups for m in g["machines"] or [g["machine_id"]]})
    unknown = [m for m in sel.machines if m not in known]
    if unknown:
        raise UserError(f"--machine {', '.join(unknown)}: no stored run measured it; machines in the store: "
                        f"{', '.join(known)}")
    cells: list[CellHistory] = []
    for g in groups:
        if sel.machines and not set(sel.machines) & set(g["machines"] or [g["machine_id"]]):
            continue
        candidate = store.load_run_typed(str(g["run_id"]))
        fp, cfg = str(g["fingerprint_id"]), str(g["config_hash"])
        parts: list[tuple[str, list[Run], Sequence[CellComparison] | None, str]] = []
        one = (f"one stored run of this configuration: the history gate needs >= {MIN_HISTORY} "
               f"({MIN_HISTORY - 1} more)")
        if _is_cluster(candidate):
            baselines, machines, why = _cluster_parts(store, candidate.run_id)
            one = why or one
        else:
            baselines = store.runs_like_typed(candidate, HISTORY_ALL, samples=False)
            machines = [("", baselines, candidate)] if baselines else []
        accepted = store.acceptances([b.run_id for b in [*baselines, candidate]])
        if not machines:
            parts.append((str(g["machine_id"]), [*sorted(baselines, key=_created), candidate], None, one))
        for machine, bases, cand in machines:
            mine = [a for a in accepted if not machine or a.get("machine_id") in (None, machine)]
            cmp = compare_runs(bases, cand, threshold=threshold, history=True, accepted=mine, quality=False)
            parts.append((machine or str(g["machine_id"]), [*sorted(bases, key=_created), cand], cmp.cells, ""))
        for machine, runs, cmp_cells, why in parts:
            if sel.machines and machine not in sel.machines:
                continue
            mine = [a for a in accepted if a.get("machine_id") in (None, "", machine)]
            cells += _cells_of(machine, runs, cmp_cells, mine, fp, cfg, why)
    return _select(cells, sel)


def _created(run: Run) -> str:
    return run.created


def _is_cluster(run: Run) -> bool:
    """A cluster run: its rows name the machines (described in `machines`) that measured them."""
    return run.machines is not None and any(r.machine_id for r in run.results)


def _cluster_parts(store: ResultsStore, run_id: str) -> tuple[list[Run], list[tuple[str, list[Run], Run]], str]:
    """A cluster run's history (typed), and its parts machine by machine as `bench compare --history` splits them
    (`per_machine`, on the stored dicts), each part typed once; with no part, why ("" when no earlier run)."""
    from harness.cli.compare import HISTORY_ALL, per_machine

    candidate = store.load_run(run_id)
    baselines = store.runs_like(candidate, HISTORY_ALL, samples=False)
    try:
        machines = per_machine(baselines, candidate) if baselines else []
    except UserError as e:  # a cluster run whose machines no earlier run measured
        return [as_run(b) for b in baselines], [], str(e)
    parts = [(m, [as_run(b) for b in bases], as_run(cand)) for m, bases, cand in machines]
    return [as_run(b) for b in baselines], parts, ""


def _select(cells: list[CellHistory], sel: Selection) -> list[CellHistory]:
    if sel.backends:
        have = sorted({c.backend for c in cells})
        unknown = [b for b in sel.backends if b not in have]
        if unknown:
            raise UserError(f"--backend {', '.join(unknown)}: no stored cell ran it; backends in the store: "
                            f"{', '.join(have) or 'none'}")
        cells = [c for c in cells if c.backend in sel.backends]
    if sel.model:
        have = sorted({c.model for c in cells})
        cells = [c for c in cells if sel.model.lower() in c.model.lower()]
        if not cells:
            raise UserError(f"--model {sel.model!r} matches no stored cell's model; models: {', '.join(have)}")
    if not cells:
        raise UserError("no stored cell has a latency value to draw (every cell failed or was unavailable)")
    return cells
