"""Open and accepted changes per cell of a stored run's configuration: what `bench history --changes` and the
report show (the history gate over the run's same-machine, same-config runs, plus the stored acceptances)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from common.records import Run
    from harness.history.store import ResultsStore

LOOK_BACK = 1000  # runs, as `bench compare --history` without N


def changes_of(store: ResultsStore, run: Run | dict[str, Any], threshold: float = 0.05) -> dict[str, Any]:
    """{"open": [one dict per cell whose level changed since its reference, or is waiting on one more run],
    "accepted": [stored acceptances of this configuration's runs]} for `run` (its cells, latency and throughput)."""
    from common.records import as_run
    from harness.gate.regression import IMPROVEMENT, INCONCLUSIVE, REGRESSION, cell_label, compare_runs

    typed = as_run(run)
    history = store.runs_like_typed(typed, LOOK_BACK, samples=False)  # typed from the stored JSON: parsed once
    ids = [r.run_id for r in [*history, typed]]
    accepted = store.acceptances(ids)
    out: list[dict[str, Any]] = []
    if history:
        cmp = compare_runs(history, typed, threshold=threshold, allow_hardware_mismatch=True, history=True,
                           accepted=accepted, quality=False)
        for c in cmp.cells:
            hv = c.history
            if hv is None or c.latency not in (REGRESSION, IMPROVEMENT, INCONCLUSIVE) or not c.series_runs:
                continue
            if c.latency == INCONCLUSIVE and hv.change_points == []:
                continue  # too short a history: nothing has changed yet
            out.append({"cell": cell_label(c.key), "verdict": c.latency,
                        "since_run": c.series_runs[hv.since] if hv.since is not None else None,
                        "rel_change": c.rel_change, "ci": list(hv.ci) if hv.ci else None,
                        "text": c.decided_by or c.reason})
    return {"run_id": typed.run_id, "runs": len(ids), "open": out, "accepted": accepted}
