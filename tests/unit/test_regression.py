"""Regression test on constructed sample sets, and `bench compare` exit codes (0 / 1 / 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import harness.cli.entry as cli
from common.errors import UserError
from harness.gate.regression import (
    BROKEN,
    INCONCLUSIVE,
    NOT_MEASURED,
    REGRESSION,
    SAME,
    compare_runs,
    samples_diagnostic,
)
from harness.history.store import ResultsStore

MY_COMMANDS = ("history", "report", "compare", "select")


def aa_group(make_run, n: int = 6, start: int = 100) -> list[dict]:
    """n same-config reruns: the A/A history a one-pair comparison learns the run-to-run noise from."""
    return [make_run(f"aa{i}", seed=start + i, created=f"2025-12-{i + 1:02d}T00:00:00Z") for i in range(n)]


# ------------------------------------------------------------------------------- the statistics alone


def test_mann_whitney_is_only_a_diagnostic():
    rng = np.random.default_rng(1)
    assert samples_diagnostic(rng.normal(1, 0.01, 500), rng.normal(1.02, 0.01, 500)) < 1e-6
    assert samples_diagnostic([1.0, 2.0], [1.0, 2.0, 3.0]) is None


# ------------------------------------------------------------------------------------- whole runs


def test_compare_runs_finds_only_the_slowed_cell(make_run):
    base = make_run("base", seed=10)
    cand = make_run("cand", seed=11, created="2026-01-11T00:00:00Z", factors={("openvino", "l1-int8"): 1.10})
    cmp = compare_runs([base], cand, threshold=0.05, aa_history=[[base, *aa_group(make_run)]])
    regs = {(c.key[0], c.key[1], c.key[3]) for c in cmp.regressions}
    assert regs == {("openvino", "l1-int8", "latency"), ("openvino", "l1-int8", "throughput")}
    lat = next(c for c in cmp.cells if c.key[:2] == ("openvino", "l1-int8") and c.key[3] == "latency")
    assert lat.rel_change == pytest.approx(0.10, abs=0.03) and lat.base_n == lat.cand_n == 300
    assert lat.method == "processes" and lat.base_processes == lat.cand_processes == 3
    assert lat.ratio_ci is not None and lat.ratio_ci[0] > 1.0 and lat.p_value is not None and lat.ci_level == 0.99
    # the A/A replay learns the noise only from runs before each pair: df >= 4 first at the 6th run, so 2 pairs
    assert lat.aa_runs == 7 and lat.aa_df == 6 and lat.aa_pairs == 2 and lat.mde is not None
    trt = [c for c in cmp.cells if c.key[0] == "tensorrt"]
    assert trt and all(not c.is_regression for c in trt)  # unavailable in both: not compared


def test_same_configuration_twice_is_clean(make_run):
    a = make_run("a", seed=20)
    cmp = compare_runs([a], make_run("b", seed=21, created="2026-01-11T00:00:00Z"),
                       aa_history=[[a, *aa_group(make_run)]])
    assert cmp.regressions == [] and cmp.inconclusive == [] and cmp.exit_code() == 0
    assert all(c.accuracy == SAME for c in cmp.cells if c.compared)
    assert all(c.accuracy == NOT_MEASURED for c in cmp.cells if not c.compared)


def test_accuracy_drop_beyond_ci_is_a_regression(make_run):
    base = make_run("a", seed=30)
    cand = make_run("b", seed=31, created="2026-01-11T00:00:00Z",
                    accuracies={("openvino", "l1-int8"): 0.80, ("onnxruntime", "l1-int8"): 0.838})
    cmp = compare_runs([base], cand, aa_history=[[base, *aa_group(make_run)]])
    by = {(c.key[0], c.key[1], c.key[3], c.key[4]): c for c in cmp.cells}
    drop = by[("openvino", "l1-int8", "latency", 1)]
    assert drop.accuracy == REGRESSION and drop.latency == SAME
    assert drop.accuracy_p_value is not None and drop.accuracy_p_value < 0.001
    small = by[("onnxruntime", "l1-int8", "latency", 1)]  # -1 point: 21 images lost, none gained
    assert small.accuracy == REGRESSION and small.accuracy_p_value == pytest.approx(2 * 0.5**21)
    assert "21 images lost, 0 gained of 2100" in small.accuracy_decided_by


def test_a_cell_that_broke_is_a_regression(make_run):
    base = make_run("a", seed=40)
    cand = make_run("b", seed=41, created="2026-01-11T00:00:00Z",
                    statuses={("onnxruntime", "dense-fp32"): ("error", "segfault in QLinearConv")})
    cmp = compare_runs([base], cand)
    broken = [c for c in cmp.regressions if c.key[:2] == ("onnxruntime", "dense-fp32")]
    assert broken and all(c.latency == BROKEN for c in broken)
    assert "segfault in QLinearConv" in broken[0].why()


def test_without_a_a_history_a_pair_is_inconclusive_and_says_how_many_runs(make_run):
    cmp = compare_runs([make_run("a", seed=1)], make_run("b", seed=2, created="2026-01-11T00:00:00Z",
                                                          factors={("openvino", "l1-int8"): 1.10}))
    lat = next(c for c in cmp.cells if c.key[:2] == ("openvino", "l1-int8") and c.key[3] == "latency")
    assert lat.latency == INCONCLUSIVE and "needs 4 (4 more same-config run(s))" in lat.why()
    assert cmp.exit_code() == 3 and cmp.exit_code(allow_inconclusive=True) == 0
    big = compare_runs([make_run("a", seed=1)], make_run("c", seed=3, factors={("openvino", "l1-int8"): 1.8}))
    assert {c.key[:2] for c in big.regressions} == {("openvino", "l1-int8")}  # beyond the conservative bound


def test_history_uses_runs_as_the_unit(tmp_path, make_run):
    with ResultsStore(f"sqlite:///{tmp_path / 'h.sqlite'}") as store:
        for i in range(4):
            store.save_run(make_run(f"n{i}", seed=50 + i, created=f"2026-01-0{i + 1}T00:00:00Z", n=100))
        for i in (4, 5):
            store.save_run(make_run(f"n{i}", seed=60 + i, created=f"2026-01-0{i + 1}T00:00:00Z", n=100,
                                    factors={("torch-eager", "l1-fp32"): 1.25}))
        latest = store.load_run("latest")
        cmp = compare_runs(store.runs_like(latest, 5), latest)
    assert cmp.baseline_ids == ["n4", "n3", "n2", "n1", "n0"]
    cell = next(c for c in cmp.cells if c.key[:2] == ("torch-eager", "l1-fp32") and c.key[3] == "latency")
    assert cell.method == "runs" and cell.series_ms is not None and len(cell.series_ms) == 6
    assert cell.series_ms[-1] == pytest.approx(cell.cand_p50_ms)
    assert cell.series_runs == ["n0", "n1", "n2", "n3", "n4", "n5"]
    assert "regressed since run 5 (n4) (+2" in cell.decided_by and cell.history is not None
    assert {c.key[:2] for c in cmp.regressions} == {("torch-eager", "l1-fp32")}


def test_different_hardware_is_refused_unless_allowed(make_run):
    a = make_run("a", fingerprint="fp-a")
    b = make_run("b", fingerprint="fp-b", created="2026-01-11T00:00:00Z")
    with pytest.raises(UserError, match="--allow-hardware-mismatch"):
        compare_runs([a], b)
    cmp = compare_runs([a], b, allow_hardware_mismatch=True)
    assert any("fp-b" in w for w in cmp.warnings)


@pytest.mark.parametrize("threshold", [0.0, -0.1, 10.0])
def test_bad_threshold_is_a_user_error(make_run, threshold):
    with pytest.raises(UserError, match="--threshold"):
        compare_runs([make_run("a")], make_run("b"), threshold=threshold)


# ------------------------------------------------------------------------------------- the command


@pytest.fixture
def bench(monkeypatch):
    """`bench` with only this helper's subcommands registered (the others are not needed here)."""
    monkeypatch.setattr(cli, "COMMANDS", MY_COMMANDS)
    return cli.main


def test_compare_command_exit_codes(tmp_path, make_run, bench, capsys):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with ResultsStore(url) as store:
        for r in aa_group(make_run):  # same-config reruns: the A/A history of this machine
            store.save_run(r)
        store.save_run(make_run("base", seed=70, created="2026-01-01T00:00:00Z"))
        store.save_run(make_run("same", seed=71, created="2026-01-02T00:00:00Z"))
        store.save_run(make_run("slow", seed=72, created="2026-01-03T00:00:00Z",
                                factors={("openvino", "l1-int8"): 1.1}))
        store.save_run(make_run("elsewhere", seed=73, created="2026-01-04T00:00:00Z", fingerprint="fp-z"))
    out = tmp_path / "cmp.json"
    assert bench(["compare", "--store", url, "--baseline", "base", "--candidate", "same"]) == 0
    text = capsys.readouterr().out
    assert "Holm over" in text and "the chance of any false alarm in this comparison is <= 0.01" in text
    assert bench(["compare", "--store", url, "--baseline", "base", "--candidate", "slow", "--json", str(out)]) == 1
    err = capsys.readouterr().err
    assert "check failed" in err and "openvino/l1-int8 latency b1" in err
    data = json.loads(out.read_text())
    assert data["regressions"] == 3 and data["baseline"] == ["base"] and data["candidate"] == "slow"
    assert data["exit_code"] == 1 and data["inconclusive"] == 0
    lat = next(c for c in data["cells"] if c["variant"] == "l1-int8" and c["backend"] == "openvino"
               and c["scenario"] == "latency")
    # replayed with the noise of the runs before each pair only: df >= 4 from the 6th run on, so 3 pairs of 8 runs
    assert lat["aa_runs"] == 8 and lat["aa_pairs"] == 3 and lat["aa_false_alarms"] == 0 and lat["mde"] < 0.1
    assert data["correction"] == "holm" and data["family_wise_alpha"] == 0.01 and "Holm over" in data["family"]
    assert lat["statistic"].startswith("fast-mode level") and lat["judged"] == "level"
    assert lat["gate_p_adjusted"] is not None and lat["gate_p_adjusted"] >= lat["gate_p"]
    assert {c["scenario"] for c in data["cells"] if c["regression"]} == {"latency", "throughput"}
    assert bench(["compare", "--store", url, "--baseline", "base", "--candidate", "elsewhere"]) == 2
    assert "--allow-hardware-mismatch" in capsys.readouterr().err
    assert bench(["compare", "--store", url, "--baseline", "base", "--candidate", "elsewhere",
                  "--allow-hardware-mismatch"]) == 0
    assert bench(["compare", "--store", url, "--baseline", "nope"]) == 2
    assert "unknown run id 'nope'" in capsys.readouterr().err
    assert bench(["compare", "--store", url]) == 2
    assert bench(["compare", "--store", url, "--history", "2", "--baseline", "base"]) == 2
    # the latest run (elsewhere, fp-z) has no predecessor with its fingerprint
    assert bench(["compare", "--store", url, "--history", "2"]) == 2
    assert "no earlier stored run" in capsys.readouterr().err
    # two earlier runs are too short a history to test: inconclusive (3), never a pass
    assert bench(["compare", "--store", url, "--history", "2", "--candidate", "slow"]) == 3
    assert bench(["compare", "--store", url, "--history", "1", "--candidate", "same"]) == 3
