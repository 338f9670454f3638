"""Never a silent pass: every compared cell ends regression / improvement / no change / inconclusive (with its
reason in one line) / broken, and `bench compare` exits 0 only when every compared cell was tested."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import harness.cli.entry as cli
from harness.gate.regression import BROKEN, INCONCLUSIVE, NOT_MEASURED, compare_runs
from harness.history.store import ResultsStore

CELL = ("openvino", "l1-int8")


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", ("compare", "history", "report", "select"))
    return cli.main


def _without(run: dict[str, Any], backend: str, variant: str) -> dict[str, Any]:
    run = copy.deepcopy(run)
    run["results"] = [r for r in run["results"] if (r["backend"], r["variant"]) != (backend, variant)]
    return run


def _one_process(run: dict[str, Any]) -> dict[str, Any]:
    """The run as `benchmark.rounds = 1` writes it: one process per cell."""
    run = copy.deepcopy(run)
    for r in run["results"]:
        if r.get("rounds"):
            r["rounds"] = r["rounds"][:1]
    return run


def _noisy(run: dict[str, Any], backend: str, variant: str) -> dict[str, Any]:
    run = copy.deepcopy(run)
    for r in run["results"]:
        if (r["backend"], r["variant"]) == (backend, variant):
            for p in r["rounds"]:
                p["noisy"] = "other processes used 80% of the allowed CPUs"
    return run


def _store(tmp_path, build_run, *runs: dict[str, Any]) -> str:
    """A store with six same-config reruns (the A/A history: every other cell is testable) and `runs`."""
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with ResultsStore(url) as store:
        for i in range(6):
            store.save_run(build_run(f"aa{i}", seed=100 + i, created=f"2025-12-{i + 1:02d}T00:00:00Z"))
        for r in runs:
            store.save_run(r)
    return url


def _cmp(bench, url: str, *extra: str) -> int:
    return int(bench(["compare", "--store", url, "--baseline", "base", "--candidate", "cand", *extra]))


def _reason_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("inconclusive: ") and "... and" not in line]


def test_a_cell_missing_from_the_candidate_is_inconclusive_exit_3(tmp_path, make_run, bench, capsys):
    base = make_run("base", seed=1)
    cand = _without(make_run("cand", seed=2, created="2026-01-11T00:00:00Z"), *CELL)
    url = _store(tmp_path, make_run, base, cand)
    capsys.readouterr()
    assert _cmp(bench, url) == 3
    lines = _reason_lines(capsys.readouterr().err)
    assert lines and all("openvino/l1-int8" in x and "candidate missing" in x for x in lines)
    assert _cmp(bench, url, "--allow-inconclusive") == 0


def test_a_one_process_candidate_is_inconclusive_exit_3(tmp_path, make_run, bench, capsys):
    url = _store(tmp_path, make_run, make_run("base", seed=1),
                 _one_process(make_run("cand", seed=2, created="2026-01-11T00:00:00Z")))
    capsys.readouterr()
    assert _cmp(bench, url) == 3
    lines = _reason_lines(capsys.readouterr().err)
    assert lines and all("too few processes" in x and "candidate 1" in x for x in lines)


def test_an_unavailable_candidate_cell_that_was_ok_is_broken_exit_1(tmp_path, make_run, bench, capsys):
    cand = make_run("cand", seed=2, created="2026-01-11T00:00:00Z",
                    statuses={CELL: ("unavailable", "openvino is not installed")})
    url = _store(tmp_path, make_run, make_run("base", seed=1), cand)
    capsys.readouterr()
    assert _cmp(bench, url) == 1
    err = capsys.readouterr().err
    assert "check failed" in err and "openvino/l1-int8 latency b1" in err
    cells = compare_runs([make_run("base", seed=1)], cand).cells
    broken = [c for c in cells if c.key[:2] == CELL]
    assert broken and all(c.latency == BROKEN and "was ok, now unavailable: openvino is not installed" in c.why()
                          for c in broken)


def test_an_unavailable_candidate_without_a_baseline_is_inconclusive_exit_3(tmp_path, make_run, bench, capsys):
    base = _without(make_run("base", seed=1), *CELL)
    cand = make_run("cand", seed=2, created="2026-01-11T00:00:00Z",
                    statuses={CELL: ("unavailable", "openvino is not installed")})
    url = _store(tmp_path, make_run, base, cand)
    capsys.readouterr()
    assert _cmp(bench, url) == 3
    lines = _reason_lines(capsys.readouterr().err)
    assert lines and all("candidate unavailable" in x and "baseline missing" in x for x in lines)


def test_a_candidate_whose_processes_were_all_noisy_is_inconclusive(tmp_path, make_run, bench, capsys):
    url = _store(tmp_path, make_run, make_run("base", seed=1),
                 _noisy(make_run("cand", seed=2, created="2026-01-11T00:00:00Z"), *CELL))
    capsys.readouterr()
    assert _cmp(bench, url) == 3
    lines = _reason_lines(capsys.readouterr().err)
    assert lines and all("openvino/l1-int8" in x and "every process of the candidate was noisy" in x for x in lines)


def test_cells_neither_run_measured_are_listed_not_compared(make_run):
    cmp = compare_runs([make_run("a", seed=1)], make_run("b", seed=2, created="2026-01-11T00:00:00Z"))
    trt = [c for c in cmp.cells if c.key[0] == "tensorrt"]
    assert trt and all(c.latency == NOT_MEASURED and not c.compared and not c.is_inconclusive for c in trt)


def test_no_inconclusive_cell_ever_exits_0(make_run):
    """Each way a cell can be untestable, through the exit code: never 0 without --allow-inconclusive."""
    base = make_run("base", seed=1)
    cands = [
        _without(make_run("c1", seed=2), *CELL),
        _one_process(make_run("c2", seed=3)),
        make_run("c3", seed=4, statuses={CELL: ("unavailable", "gone")}),
        _noisy(make_run("c4", seed=5), *CELL),
    ]
    for cand in cands:
        cmp = compare_runs([base], cand)
        assert cmp.exit_code() in (1, 3), cand["run_id"]
        assert any(c.latency in (INCONCLUSIVE, BROKEN) for c in cmp.cells)
        assert all("\n" not in c.why() for c in cmp.cells)


def test_a_reference_arm_never_stands_in_for_its_candidate_across_runs(make_run):
    """A paired run stores its reference rows after the candidate rows under the same cell key; a comparison across
    runs must judge the candidate, not the reference that came last (the reference here is 3x slower, so judging
    it would call a regression)."""
    base = make_run("base", seed=1)
    cand = make_run("cand", seed=1, created="2026-01-11T00:00:00Z")
    slow_ref = make_run("ref", seed=1, factors={CELL: 3.0})
    refs = [{**r, "arm": "reference"} for r in slow_ref["results"] if (r["backend"], r["variant"]) == CELL]
    cand["results"] = [{**r, "arm": "candidate"} for r in cand["results"]] + refs
    cells = [c for c in compare_runs([base], cand).cells if c.key[:2] == CELL and c.key[3] == "latency"]
    assert cells and all(c.latency != "regression" for c in cells), [c.why() for c in cells]
    with_ref_as_candidate = {**cand, "results": [{**r, "arm": None} for r in refs]}
    slowed = [c for c in compare_runs([base], with_ref_as_candidate).cells if c.key[:2] == CELL]
    assert any(c.latency == "regression" for c in slowed)  # the same rows judged as a candidate are a regression
