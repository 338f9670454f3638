"""Regression test on constructed sample sets, and `bench compare` exit codes (0 / 1 / 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import harness.cli as cli
from common.errors import UserError
from harness.regression import (
    BROKEN,
    IMPROVEMENT,
    REGRESSION,
    SAME,
    UNTESTED,
    compare_runs,
    latency_verdict,
)
from harness.store import ResultsStore

MY_COMMANDS = ("history", "report", "compare", "select")


def lognormal(rng: np.random.Generator, p50: float, sigma: float, n: int) -> list[float]:
    return (p50 * np.exp(rng.normal(0.0, sigma, n))).tolist()


# ------------------------------------------------------------------------------- the statistics alone


def test_no_change_is_not_flagged():
    rng = np.random.default_rng(1)
    flagged = 0
    for _ in range(20):  # two runs of the same configuration, many times over
        verdict, rel, _p = latency_verdict(lognormal(rng, 0.30, 0.05, 400), lognormal(rng, 0.30, 0.05, 400),
                                          threshold=0.05, alpha=0.05)
        flagged += verdict != SAME
        assert abs(rel) < 0.05
    assert flagged == 0


def test_ten_percent_slower_is_a_regression():
    rng = np.random.default_rng(2)
    verdict, rel, p = latency_verdict(lognormal(rng, 0.30, 0.05, 300), lognormal(rng, 0.33, 0.05, 300),
                                      threshold=0.05, alpha=0.05)
    assert verdict == REGRESSION
    assert rel == pytest.approx(0.10, abs=0.02) and p < 1e-10


def test_ten_percent_faster_is_an_improvement():
    rng = np.random.default_rng(3)
    verdict, rel, _p = latency_verdict(lognormal(rng, 0.33, 0.05, 300), lognormal(rng, 0.30, 0.05, 300),
                                       threshold=0.05, alpha=0.05)
    assert verdict == IMPROVEMENT and rel < -0.05


def test_noisy_with_tiny_shift_is_not_flagged():
    rng = np.random.default_rng(4)
    verdict, _rel, _p = latency_verdict(lognormal(rng, 0.30, 0.5, 200), lognormal(rng, 0.306, 0.5, 200),
                                      threshold=0.05, alpha=0.05)
    assert verdict == SAME


def test_significant_but_below_threshold_is_not_flagged():
    """Both conditions must hold: a 2% shift with 20k samples is significant but not practical."""
    rng = np.random.default_rng(5)
    verdict, rel, p = latency_verdict(lognormal(rng, 0.30, 0.03, 20_000), lognormal(rng, 0.306, 0.03, 20_000),
                                      threshold=0.05, alpha=0.05)
    assert p is not None and rel is not None
    assert p < 1e-6 and 0.0 < rel < 0.05
    assert verdict == SAME


def test_large_shift_with_too_few_samples_is_not_flagged():
    """Big practical change but no statistical evidence (3 vs 3 samples): untested, not a regression."""
    verdict, _rel, _p = latency_verdict([1.0, 1.5, 0.7], [1.3, 2.0, 0.8], threshold=0.05, alpha=0.05)
    assert verdict == UNTESTED
    rng = np.random.default_rng(6)
    verdict, _rel, p = latency_verdict(lognormal(rng, 1.0, 0.6, 8), lognormal(rng, 1.15, 0.6, 8),
                                      threshold=0.05, alpha=0.05)
    assert p is not None and p > 0.05 and verdict == SAME


# ------------------------------------------------------------------------------------- whole runs


def test_compare_runs_finds_only_the_slowed_cell(make_run):
    base = make_run("base", seed=10)
    cand = make_run("cand", seed=11, created="2026-01-11T00:00:00Z", factors={("openvino", "l1-int8"): 1.10})
    cmp = compare_runs([base], cand, threshold=0.05)
    regs = {(c.key[0], c.key[1], c.key[3]) for c in cmp.regressions}
    assert regs == {("openvino", "l1-int8", "latency"), ("openvino", "l1-int8", "throughput")}
    lat = next(c for c in cmp.cells if c.key[:2] == ("openvino", "l1-int8") and c.key[3] == "latency")
    assert lat.rel_change == pytest.approx(0.10, abs=0.03) and lat.base_n == lat.cand_n == 300
    trt = [c for c in cmp.cells if c.key[0] == "tensorrt"]
    assert trt and all(not c.is_regression for c in trt)  # unavailable in both: not compared


def test_same_configuration_twice_is_clean(make_run):
    cmp = compare_runs([make_run("a", seed=20)], make_run("b", seed=21, created="2026-01-11T00:00:00Z"))
    assert cmp.regressions == []
    assert all(c.accuracy in (SAME, UNTESTED) for c in cmp.cells)


def test_accuracy_drop_beyond_ci_is_a_regression(make_run):
    base = make_run("a", seed=30)
    cand = make_run("b", seed=31, created="2026-01-11T00:00:00Z",
                    accuracies={("openvino", "l1-int8"): 0.80, ("onnxruntime", "l1-int8"): 0.838})
    cmp = compare_runs([base], cand)
    by = {(c.key[0], c.key[1], c.key[3], c.key[4]): c for c in cmp.cells}
    drop = by[("openvino", "l1-int8", "latency", 1)]
    assert drop.accuracy == REGRESSION and drop.latency == SAME
    assert drop.accuracy_p_value is not None and drop.accuracy_p_value < 0.001
    small = by[("onnxruntime", "l1-int8", "latency", 1)]  # -1 point on 2100 images: inside the CI
    assert small.accuracy == SAME and small.cand_accuracy is not None and small.base_accuracy is not None
    assert small.cand_accuracy < small.base_accuracy


def test_a_cell_that_broke_is_a_regression(make_run):
    base = make_run("a", seed=40)
    cand = make_run("b", seed=41, created="2026-01-11T00:00:00Z",
                    statuses={("onnxruntime", "dense-fp32"): ("error", "segfault in QLinearConv")})
    cmp = compare_runs([base], cand)
    broken = [c for c in cmp.regressions if c.key[:2] == ("onnxruntime", "dense-fp32")]
    assert broken and all(c.latency == BROKEN for c in broken)
    assert "segfault in QLinearConv" in broken[0].notes[0]


def test_history_pools_previous_runs(tmp_path, make_run):
    with ResultsStore(f"sqlite:///{tmp_path / 'h.sqlite'}") as store:
        for i in range(3):
            store.save_run(make_run(f"n{i}", seed=50 + i, created=f"2026-01-0{i + 1}T00:00:00Z", n=100))
        store.save_run(make_run("n3", seed=60, created="2026-01-05T00:00:00Z", n=100,
                                factors={("torch-eager", "l1-fp32"): 1.12}))
        latest = store.load_run("latest")
        cmp = compare_runs(store.runs_like(latest, 3), latest)
    assert cmp.baseline_ids == ["n2", "n1", "n0"]
    cell = next(c for c in cmp.cells if c.key[:2] == ("torch-eager", "l1-fp32") and c.key[3] == "latency")
    assert cell.base_n == 300 and cell.cand_n == 100  # three runs' samples pooled
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
        store.save_run(make_run("base", seed=70, created="2026-01-01T00:00:00Z"))
        store.save_run(make_run("same", seed=71, created="2026-01-02T00:00:00Z"))
        store.save_run(make_run("slow", seed=72, created="2026-01-03T00:00:00Z",
                                factors={("openvino", "l1-int8"): 1.1}))
        store.save_run(make_run("elsewhere", seed=73, created="2026-01-04T00:00:00Z", fingerprint="fp-z"))
    out = tmp_path / "cmp.json"
    assert bench(["compare", "--store", url, "--baseline", "base", "--candidate", "same"]) == 0
    assert bench(["compare", "--store", url, "--baseline", "base", "--candidate", "slow", "--json", str(out)]) == 1
    err = capsys.readouterr().err
    assert "check failed" in err and "openvino/l1-int8 latency b1" in err
    data = json.loads(out.read_text())
    assert data["regressions"] == 3 and data["baseline"] == ["base"] and data["candidate"] == "slow"
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
    assert bench(["compare", "--store", url, "--history", "2", "--candidate", "slow"]) == 1
    assert bench(["compare", "--store", url, "--history", "1", "--candidate", "same"]) == 0


def test_history_widens_the_threshold_to_the_run_to_run_noise() -> None:
    """Three same-config baselines whose p50s spread by ±12%: a candidate 10% slower than their pooled
    median is within the machine's run-to-run noise; against one baseline alone it is a regression."""
    import numpy as np

    from harness.regression import REGRESSION, SAME, compare_cells, run_to_run_noise

    rng = np.random.default_rng(7)

    def row(center: float) -> dict[str, object]:
        samples = list(center * (1 + rng.normal(0, 0.02, 2000)))
        return {"backend": "openvino", "variant": "l1-int8", "device": "CPU", "scenario": "latency",
                "batch_size": 1, "status": "ok", "samples_ms": samples}

    baselines = [row(0.30), row(0.34), row(0.27)]
    noise = run_to_run_noise(baselines)
    assert noise is not None and 0.10 < noise < 0.16
    cand = [row(0.33)]
    (pooled,) = compare_cells(baselines, cand)
    assert pooled.latency == SAME and pooled.threshold_used == noise
    (single,) = compare_cells([baselines[0]], cand)
    assert single.latency == REGRESSION and single.threshold_used == 0.05
    (slow,) = compare_cells(baselines, [row(0.45)])  # a real slowdown (e.g. half the threads) still shows
    assert slow.latency == REGRESSION
