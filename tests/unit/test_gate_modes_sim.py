"""The gate's statistics on a simulated machine as hard as the 2-vCPU VMs (tests/unit/gate_sim.py): four modes of
per-process p50s with a mix that changes per run, a night effect shared by every cell, slow host phases.

The claims checked here are the ones `bench compare` and docs/measuring.md print: the old median-of-processes rule
misses +10% in one night on such data; the fast-mode level finds it with at most 1% false alarms per night for the
whole comparison (Holm); the level interval covers; the paired verdict meets the same goal within one run."""

from __future__ import annotations

import math

import gate_sim as gs
import numpy as np
import pytest
from scipy.stats import beta

from common.stats.levels import holm, level_diff, mix_mcnemar
from common.stats.modes import GATE_PROCESSES, mode_mix, p_hit, processes_for
from common.stats.noise import aa_bound, run_noise
from harness.gate.paired import inconclusive_cells, judge_paired
from harness.gate.regression import IMPROVEMENT, REGRESSION, compare_runs

CELLS = 6
NIGHTS = 200


def upper_cp(k: int, n: int, level: float = 0.95) -> float:
    """Clopper-Pearson upper bound of a rate."""
    return 1.0 if k >= n else float(beta.ppf(level, k + 1, n - k))


def test_the_simulated_machine_is_as_hard_as_the_measured_one() -> None:
    """The median over 10 processes moves 6-17% between runs (measured); the fast level about 0.5% (when a run
    hits the fast mode, which 1 - 0.72^10 of them do)."""
    x = gs.nights(1, 400, 1, 10)[:, 0, :]
    med = np.log(np.median(x, axis=1))
    fast = np.log([m.fast_ms for m in map(mode_mix, x) if m is not None])
    assert 0.06 < float(np.std(med)) < 0.2
    hit = fast < math.log(gs.BASE_MS * 1.1)
    assert 0.8 < hit.mean() < 0.98 and float(np.std(fast[hit])) < 0.01


def test_mode_mix_finds_the_fast_mode_and_the_slow_share() -> None:
    vals = [0.112, 0.1125, 0.148, 0.149, 0.18, 0.231, 0.1118, 0.147, 0.181, 0.23]
    mm = mode_mix(vals)
    assert mm is not None and mm.n == 10 and mm.n_slow == 7 and mm.slow_share == pytest.approx(0.7)
    assert mm.fast_ms == pytest.approx(0.112) and 0.1125 < mm.threshold_ms < 0.147
    assert mm.levels_ms == pytest.approx([0.112, 0.148, 0.1805, 0.2305], rel=0.01)
    assert mm.to_dict()["levels_ms"] == mm.levels_ms
    one = mode_mix([1.0, 1.02, 0.99, 1.01])  # one mode: the level is the median of all (the old run value)
    assert one is not None and one.slow_share == 0.0 and one.fast_ms == pytest.approx(float(np.median([1, 1.02, .99,
                                                                                                       1.01])))
    chain = mode_mix([1.0, 1.04, 1.08, 1.12, 1.16])  # gaps below 6% cannot chain past 1.1 x the minimum
    assert chain is not None and chain.n_slow == 2
    assert mode_mix([]) is None and mode_mix([float("nan"), -1.0]) is None


def test_processes_per_cell_arithmetic() -> None:
    assert p_hit(0.3, 10) == pytest.approx(1 - 0.7 ** 10)
    assert processes_for(0.3, 0.99) == 13
    assert p_hit(0.3, GATE_PROCESSES, at_least=2) >= 0.99 > p_hit(0.3, GATE_PROCESSES - 3, at_least=2)


def test_holm_matches_the_step_down_by_hand() -> None:
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([]) == []


def _old_rule_calls(x: np.ndarray, history: int, alpha: float, threshold: float) -> np.ndarray:
    """The old gate per cell: the median of processes, judged against the A/A noise of run medians, each cell at
    alpha (no correction). x: (runs, cells, processes); the last run is the candidate, the one before the baseline.
    Returns per cell: +1 regression called, -1 improvement, 0 none."""
    med = np.median(x, axis=2)
    out = np.zeros(x.shape[1], dtype=int)
    for c in range(x.shape[1]):
        noise = run_noise([list(med[:history, c])])
        assert noise is not None
        r = math.log(med[-1, c] / med[-2, c])
        if abs(r) > aa_bound(noise, alpha) and abs(math.exp(r) - 1) > threshold:
            out[c] = 1 if r > 0 else -1
    return out


def _nightly(seed: int, slow: float) -> tuple[list[dict], np.ndarray]:
    """A history of 9 same-config runs and a candidate night; `slow` on cell 0 of the candidate only."""
    factor = np.ones(10)
    x = gs.nights(seed, 10, CELLS, GATE_PROCESSES)
    x[-1, 0] *= slow
    del factor
    runs = [gs.plain_run(x[i], f"r{i}", f"2026-12-{i + 1:02d}T00:00:00Z") for i in range(10)]
    return runs, x


@pytest.mark.parametrize("slow", [1.0, 1.10])
def test_old_median_rule_misses_ten_percent_and_the_level_rule_finds_it_at_one_percent(slow: float) -> None:
    """--baseline A --candidate B on simulated nights (20 processes per cell, 9 runs of A/A history): the old
    median rule finds +10% in under half the nights; the level rule with Holm in >= 90%, and on unslowed nights
    raises any alarm (any cell, either direction) in <= 1% of nights for the whole comparison."""
    new_alarm = new_found = old_found = 0
    for night in range(NIGHTS // 2):
        runs, x = _nightly(1000 + night, slow)
        cmp = compare_runs([runs[-2]], runs[-1], aa_history=[runs[:-1]], quality=False,
                           allow_hardware_mismatch=True)
        called = {c.key[1]: c.latency for c in cmp.cells}
        old = _old_rule_calls(x, 9, 0.01, 0.05)
        if slow == 1.0:
            new_alarm += any(v in (REGRESSION, IMPROVEMENT) for v in called.values())
        else:
            new_found += called["v0"] == REGRESSION
            old_found += old[0] == 1
            new_alarm += any(called[f"v{c}"] in (REGRESSION, IMPROVEMENT) for c in range(1, CELLS))
    n = NIGHTS // 2
    assert new_alarm / n <= 0.01 and upper_cp(new_alarm, n) < 0.05
    if slow > 1.0:
        assert new_found / n >= 0.9
        assert old_found / n < 0.5


def test_level_interval_covers_on_multimodal_data() -> None:
    """The 95% interval of the candidate/reference level ratio covers the planted ratio on paired multimodal cells
    (clustering included) at least 93% of the time, among the cells whose fast modes are comparable."""
    for slow in (1.0, 1.07):
        c, r = gs.paired_nights(7, 150, CELLS, GATE_PROCESSES, slow=slow)
        cover = total = 0
        for i in range(c.shape[0]):
            for j in range(CELLS):
                d = level_diff(c[i, j], r[i, j], confidence=0.95)
                cm, rm = mode_mix(c[i, j]), mode_mix(r[i, j])
                assert cm is not None and rm is not None
                if d is None or abs(math.log(cm.fast_ms / rm.fast_ms / slow)) > math.log(1.1):
                    continue  # one arm missed the fast mode: not judged as a level (the verdict says so)
                total += 1
                cover += d.low <= slow <= d.high
        assert total > 0.9 * c.shape[0] * CELLS
        assert cover / total >= 0.93, (slow, cover / total)


@pytest.mark.parametrize("slow", [1.0, 1.10])
def test_paired_gate_meets_the_goal_within_one_run(slow: float) -> None:
    """--paired on simulated paired runs (20 pairs per cell, ABBA, shared night and phases): on unslowed runs
    at most 1% of nights raise any alarm in the whole comparison (Holm); every cell slowed +10% is called a
    regression in >= 90% of cells, judged on the level."""
    nights = NIGHTS // 2
    c, r = gs.paired_nights(11, nights, CELLS, GATE_PROCESSES, slow=slow)
    alarms = found = 0
    for i in range(nights):
        res = judge_paired(gs.paired_run(c[i], r[i], run_id=f"n{i}"))
        if slow == 1.0:
            alarms += any(x.verdict in (REGRESSION, IMPROVEMENT) for x in res.cells)
        else:
            found += sum(x.verdict == REGRESSION and "level" in x.judged for x in res.cells)
    if slow == 1.0:
        assert alarms / nights <= 0.01 and upper_cp(alarms, nights) < 0.05
    else:
        assert found / (nights * CELLS) >= 0.9


@pytest.mark.parametrize("slow", [1.5, 2.0])
def test_paired_gate_calls_a_large_slowdown_that_lands_on_a_slower_modes_level(slow: float) -> None:
    """A 2x slower candidate's fast level sits on the reference's fourth mode (0.23 / 0.112 = 2.05): the candidate
    did not just miss three modes by chance (that has probability (1 - q)^20 for the reference's share q below
    it), so the level is judged and the cell is a regression, not 'not comparable'."""
    nights = 20
    c, r = gs.paired_nights(12, nights, CELLS, GATE_PROCESSES, slow=slow)
    called = sum(x.verdict == REGRESSION for i in range(nights)
                 for x in judge_paired(gs.paired_run(c[i], r[i])).cells)
    assert called / (nights * CELLS) >= 0.95, called


def test_paired_mix_regression_is_called_on_the_mix() -> None:
    """A candidate whose processes land in slow modes far more often (same levels) is a mix regression."""
    rng = np.random.default_rng(3)
    ref = gs.BASE_MS * gs.MODES[rng.choice(4, size=(CELLS, 30), p=[0.6, 0.2, 0.1, 0.1])]
    cand = gs.BASE_MS * gs.MODES[rng.choice(4, size=(CELLS, 30), p=[0.1, 0.4, 0.3, 0.2])]
    ref[:, :3], cand[:, :3] = gs.BASE_MS, gs.BASE_MS  # both arms keep some fast processes
    ref *= np.exp(rng.normal(0, gs.WITHIN_SD, ref.shape))
    cand *= np.exp(rng.normal(0, gs.WITHIN_SD, cand.shape))
    res = judge_paired(gs.paired_run(cand, ref))
    assert all(x.verdict == REGRESSION and x.judged == ["mix"] for x in res.cells), [x.decided_by for x in res.cells]
    assert res.to_dict()["correction"] == "holm" and res.exit_code() == 1


def test_mcnemar_mix_uses_only_discordant_pairs() -> None:
    m = mix_mcnemar([(True, True)] * 20 + [(True, False)] * 6)
    assert m is not None and m.discordant == (6, 0) and m.p_value == pytest.approx(2 * 0.5 ** 6)


def test_inconclusive_cells_name_the_cells_that_need_more_pairs() -> None:
    c, r = gs.paired_nights(5, 1, 2, 2)  # two pairs per cell: below MIN_PAIRS
    run = gs.paired_run(c[0], r[0])
    keys = inconclusive_cells(run)
    assert keys == [("openvino", "v0", "cpu", "latency", 1), ("openvino", "v1", "cpu", "latency", 1)]
    assert judge_paired(run).exit_code() == 3 and judge_paired(run).exit_code(allow_inconclusive=True) == 0


def test_compare_paired_cli_exit_codes_and_output(tmp_path, monkeypatch, capsys) -> None:
    """`bench compare --paired RUN`: 0 on an A/A paired run, 1 on a +20% candidate (judged: level), 3 with too
    few pairs, 2 (one error line) for a run without a reference arm; --json says the correction."""
    import json

    import harness.cli.entry as cli

    monkeypatch.setattr(cli, "COMMANDS", ("compare",))
    store = f"sqlite:///{tmp_path / 'h.sqlite'}"

    def write(name: str, run: dict) -> str:
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(run))
        return str(p)

    c, r = gs.paired_nights(31, 1, 3, GATE_PROCESSES)
    same = write("same", gs.paired_run(c[0], r[0]))
    c2, r2 = gs.paired_nights(32, 1, 3, GATE_PROCESSES, slow=1.2)
    slow = write("slow", gs.paired_run(c2[0], r2[0]))
    few = write("few", gs.paired_run(c[0][:, :2], r[0][:, :2]))
    lone = write("lone", {"run_id": "x", "results": [gs.row(c[0][0], 0)]})
    assert cli.main(["compare", "--store", store, "--paired", same]) == 0
    out = tmp_path / "o.json"
    assert cli.main(["compare", "--store", store, "--paired", slow, "--json", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert doc["correction"] == "holm" and doc["family_wise_alpha"] == 0.01 and doc["regressions"] == 3
    assert all(x["judged"] == ["level"] and x["level_statistic"].startswith("fast-mode") for x in doc["cells"])
    assert "Holm over 3 cell(s)" in capsys.readouterr().out
    assert cli.main(["compare", "--store", store, "--paired", few]) == 3
    assert cli.main(["compare", "--store", store, "--paired", few, "--allow-inconclusive"]) == 0
    capsys.readouterr()
    assert cli.main(["compare", "--store", store, "--paired", lone]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no reference arm" in err and err.count("\n") == 1
    assert cli.main(["compare", "--store", store, "--paired", same, "--baseline", same]) == 2


def test_history_on_levels_finds_a_ten_percent_step_by_its_second_run_without_false_alarms() -> None:
    """--history over 10 nights of levels (20 processes per cell): a +10% step in cell 0 for the last two nights
    is called a regression on the second slowed night in >= 90% of histories; the other cells, and unslowed
    histories, raise no alarm in >= 99% of nights (Holm over the comparison)."""
    nights, found, alarms = 40, 0, 0
    for h in range(nights):
        x = gs.nights(2000 + h, 10, CELLS, GATE_PROCESSES)
        x[-2:, 0] *= 1.10
        runs = [gs.plain_run(x[i], f"r{i}", f"2026-12-{i + 1:02d}T00:00:00Z") for i in range(10)]
        cmp = compare_runs(runs[:-1], runs[-1], history=True, quality=False, allow_hardware_mismatch=True)
        called = {c.key[1]: c.latency for c in cmp.cells}
        found += called["v0"] == REGRESSION
        alarms += any(called[f"v{c}"] in (REGRESSION, IMPROVEMENT) for c in range(1, CELLS))
    assert found / nights >= 0.9 and alarms / nights <= 0.01


def test_a_failing_candidate_arm_is_broken_and_exits_one() -> None:
    c, r = gs.paired_nights(8, 1, 2, GATE_PROCESSES)
    run = gs.paired_run(c[0], r[0])
    run["results"][0].update(status="error", reason="compile failed")
    res = judge_paired(run)
    assert res.cells[0].verdict == "regression (broken)" and "compile failed" in res.cells[0].reason
    assert res.exit_code() == 1
