"""The report's paired table: both arms side by side, and for arms timed in one process the in-process ratio
(the median of candidate/reference p50 over the shared processes), which is what the paired gate judges."""

from __future__ import annotations

import gate_sim as gs
import numpy as np

from reports.tables import paired_table


def _table(interleave: str | None) -> tuple[list[str], list[list[str]], str]:
    cand = np.array([[0.20, 0.40, 0.30]])
    ref = np.array([[0.10, 0.50, 0.25]])  # ratios 2.0, 0.8, 1.2: median 1.2
    run = gs.paired_run(cand, ref, run_id="t", interleave=interleave)
    run["reference"] = {"kind": "dir", "path": "/ref", "settings": None, "interleave": interleave}
    t = paired_table(run)
    assert t is not None
    return t.header, t.rows, " ".join(t.notes)


def test_blocks_runs_show_the_in_process_ratio_and_say_what_is_judged() -> None:
    cols, rows, notes = _table("blocks")
    (row,) = rows
    assert row[cols.index("in-process ratio")] == "1.200"
    assert "one process per round" in notes and "in-process ratio is the level" in notes


def test_separate_process_runs_have_no_in_process_ratio() -> None:
    cols, rows, notes = _table(None)
    (row,) = rows
    assert row[cols.index("in-process ratio")] == "—"
    assert "separate processes" in notes
