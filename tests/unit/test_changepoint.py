"""Change points the way Apache Otava finds them, reproduced on Otava's own published series, and the history
verdict built on them: short nightly series, outliers, a level that stays flagged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.stats.changepoint import change_points, isolated_outliers, split_test
from harness.gate.history import IMPROVEMENT, INCONCLUSIVE, REGRESSION, SAME, history_verdict

SERIES = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "otava_series.json").read_text())


@pytest.mark.parametrize("name", ["single_series", "tigerbeetle"])
def test_otava_published_series_give_otava_expected_change_points(name: str) -> None:
    """tests/analysis_test.py's single series ([10]) and tests/tigerbeetle_test.py's real throughput series
    ([15, 71] at Otava's old defaults, and the lists at p from 1e-5 to 0.2), reproduced index for index."""
    data = SERIES[name]
    for e in data["expected"]:
        got = [c.index for c in change_points(data["series"], window=e["window"], max_pvalue=e["max_pvalue"],
                                              min_magnitude=e["min_magnitude"], otava=True)]
        assert got == e["change_points"], e


def test_otava_significance_examples() -> None:
    """Otava's tests/analysis_test.py test_significance_tester: no change p ~ 1; a 20% drop p < 0.001."""
    flat = [1.00, 1.02, 1.05, 0.95, 0.98, 1.00, 1.02, 1.05, 0.95, 0.98]
    assert split_test(flat[:5], flat[5:]).p_value == pytest.approx(1.0)
    drop = [1.00, 1.02, 1.05, 0.95, 0.98, 0.80, 0.82, 0.85, 0.79, 0.77]
    assert 0.0 < split_test(drop[:5], drop[5:]).p_value < 0.001


def test_detection_is_deterministic() -> None:
    x = SERIES["tigerbeetle"]["series"]
    first = [(c.index, c.p_value) for c in change_points(x, window=30, max_pvalue=0.01, min_magnitude=0.05)]
    assert first == [(c.index, c.p_value) for c in change_points(x, window=30, max_pvalue=0.01, min_magnitude=0.05)]


def test_isolated_outliers_are_single_runs_leaving_a_level_that_holds_around_them() -> None:
    assert isolated_outliers([1, 1, 1, 1.6, 1, 1, 1, 1.15, 1.15, 1.15], 0.05) == [3]
    assert isolated_outliers([1, 1, 1, 2, 2, 2, 1, 1], 0.05) == []  # three runs: a level, not an outlier
    assert isolated_outliers([1, 1, 1, 1, 1, 2], 0.05) == []  # the newest run is never judged an outlier
    assert isolated_outliers([1, 1, 1, 1.5, 1.2, 1.2, 1.2], 0.05) == []  # before a step: not isolated


# ------------------------------------------------------------------------------------- the verdict


def test_a_step_in_a_short_series_is_found_once_two_runs_show_it_and_named_from_its_first_run() -> None:
    one = history_verdict([1, 1, 1, 1, 1, 2], 0.05)
    assert one.verdict == INCONCLUSIVE and "run 6 alone is +100.0%" in one.reason and "next run" in one.reason
    two = history_verdict([1, 1, 1, 1, 2, 2], 0.05)
    assert two.verdict == REGRESSION and two.since == 4 and "regressed since run 5 (+100.0%" in two.decided_by
    three = history_verdict([1, 1, 1, 2, 2, 2], 0.05)
    assert three.verdict == REGRESSION and three.since == 3 and "regressed since run 4 (+100.0%" in three.decided_by


def test_one_outlier_before_a_step_neither_reads_as_a_change_nor_hides_the_step() -> None:
    """The replayed public series (a known change-point example): one outlier run, later a 12% step (latency up)."""
    rng = np.random.default_rng(5)
    x = (1.0 + rng.normal(0, 0.01, 16)).tolist()
    x[4] = 1.45  # one bad night
    for k in range(10, 16):
        x[k] *= 1.12
    for n in range(6, 11):  # before the step: the outlier is named, the level holds
        before = history_verdict(x[:n], 0.05, run_ids=[f"n{i}" for i in range(n)])
        assert before.verdict == SAME and before.outliers == [4] and "outlier run 5 (n4) (+4" in before.decided_by
    assert history_verdict(x[:11], 0.05).verdict == INCONCLUSIVE  # one run after the step
    for n in range(12, 17):  # from the second run after the step on: flagged, and it stays flagged
        v = history_verdict(x[:n], 0.05)
        assert v.verdict == REGRESSION and v.since == 10 and v.outliers == [4], n
        assert v.rel_change == pytest.approx(0.12, abs=0.02) and v.ci is not None and v.ci[0] < 0.12 < v.ci[1]


def test_the_outlier_alone_is_reported_as_an_outlier_not_a_change() -> None:
    v = history_verdict([1.0, 1.01, 0.99, 1.0, 1.5, 1.0, 1.01, 0.99], 0.05, run_ids=list("abcdefgh"))
    assert v.verdict == SAME and v.outliers == [4] and "outlier run 5 (e) (+50%)" in v.decided_by


def test_a_regression_stays_until_it_goes_away() -> None:
    x = [1.0, 1.01, 0.99, 1.0, 1.15, 1.16, 1.14, 1.15, 1.15, 1.16, 1.14, 1.15]
    for n in range(6, len(x) + 1):
        assert history_verdict(x[:n], 0.05).verdict == REGRESSION and history_verdict(x[:n], 0.05).since == 4
    back = history_verdict([*x, 1.0, 1.01, 0.99], 0.05)
    assert back.verdict == SAME and "back at" in back.decided_by


def test_accepting_the_step_makes_its_level_the_reference() -> None:
    x = [1.0, 1.01, 0.99, 1.0, 1.15, 1.16, 1.14, 1.15, 1.15]
    assert history_verdict(x, 0.05).verdict == REGRESSION
    assert history_verdict(x, 0.05, start=4).verdict == SAME  # the level from run 5 on is the new baseline


def test_an_improvement_becomes_the_reference_so_losing_it_is_a_regression() -> None:
    rng = np.random.default_rng(0)
    x = np.r_[np.full(6, 1.0), np.full(6, 0.8), np.full(4, 1.0)] * np.exp(rng.normal(0, 0.005, 16))
    v = history_verdict(x, 0.05)
    assert v.verdict == REGRESSION and v.since == 12 and v.reference == (6, 12)
    assert history_verdict(x[:12], 0.05).verdict == IMPROVEMENT


def test_too_short_a_history_is_inconclusive_and_says_how_many_more_runs() -> None:
    v = history_verdict([1.0, 1.0, 1.1], 0.05)
    assert v.verdict == INCONCLUSIVE and "needs >= 4 (1 more)" in v.reason
    assert history_verdict([1, 1, 2, 2], 0.05).verdict == INCONCLUSIVE


def test_a_step_of_twice_the_run_to_run_spread_is_found_with_three_runs_after_it() -> None:
    """Spread = the range of the same-config runs before the step (here +-3%); the step is twice it (~+11%)."""
    rng = np.random.default_rng(11)
    found = 0
    for _ in range(50):
        before = 1.0 + rng.uniform(-0.03, 0.03, 10)
        spread = float(before.max() - before.min())
        after = 1.0 + 2 * spread + rng.uniform(-0.03, 0.03, 3)
        v = history_verdict([*before, *after], 0.05)
        found += v.verdict == REGRESSION and v.since == 10
    assert found >= 48


@pytest.mark.parametrize("sigma", [0.01, 0.03])
def test_flat_noisy_series_rarely_flag_a_regression(sigma: float) -> None:
    """False regressions on same-config series of 6-30 runs (lognormal run-to-run noise): <= 1%."""
    rng = np.random.default_rng(int(sigma * 1000))
    alarms = sum(history_verdict(np.exp(rng.normal(0, sigma, int(rng.integers(6, 31)))), 0.05).verdict == REGRESSION
                 for _ in range(300))
    assert alarms <= 3


def test_a_history_too_noisy_to_rule_out_the_margin_is_inconclusive_not_no_change() -> None:
    """No change point in a series with 20% run-to-run spread is no evidence of no change: inconclusive."""
    rng = np.random.default_rng(5)
    noisy = history_verdict(np.exp(rng.normal(0, 0.2, 10)), 0.05)
    assert noisy.verdict == INCONCLUSIVE and "cannot be ruled out" in noisy.reason and "margin 10%" in noisy.reason
    quiet = history_verdict(np.exp(rng.normal(0, 0.01, 10)), 0.05)
    assert quiet.verdict == SAME and quiet.upper is not None and quiet.upper < 0.10
    assert "is ruled out at 95%" in quiet.decided_by
    assert history_verdict(np.exp(rng.normal(0, 0.2, 10)), 0.05, margin=5.0).verdict == SAME


@pytest.mark.parametrize("runs", [5, 10])
def test_no_change_hides_a_newest_run_at_the_margin_at_most_5_percent_of_the_time(runs: int) -> None:
    """The newest run slowed by exactly the margin (+10%) on a 4% history: "no change" in <= 5% (+ error)."""
    rng = np.random.default_rng(300 + runs)
    trials = 1000
    passes = sum(history_verdict(np.exp(rng.normal(0, 0.04, runs + 1)) * np.r_[np.ones(runs), 1.10], 0.05).verdict
                 == SAME for _ in range(trials))
    assert passes / trials <= 0.05 + 3 * (0.05 * 0.95 / trials) ** 0.5


def test_split_test_uses_the_sample_sd_and_otava_mode_the_population_sd() -> None:
    from scipy.stats import ttest_ind

    a, b = [1.0, 1.1, 0.9], [1.3, 1.2, 1.25]
    assert split_test(a, b).p_value == pytest.approx(float(ttest_ind(a, b).pvalue))  # Student's test, ddof 1
    assert split_test(a, b, ddof=0).p_value < split_test(a, b).p_value  # the population sd overstates it
    assert split_test(a, b).std_before == pytest.approx(float(np.std(a, ddof=1)))


def test_chosen_split_p_is_bonferroni_adjusted_and_keeps_flat_noise_quiet() -> None:
    """On flat noise the best of k - 1 splits passes an unadjusted t-test at 1% far more often than 1%; the
    adjusted p-value (raw x the splits of the span) keeps the change points found on flat series near alpha."""
    rng = np.random.default_rng(5)
    series = rng.normal(1.0, 0.05, (300, 20))
    raw = sum(bool(change_points(s, max_pvalue=0.01, otava=True)) for s in series) / len(series)
    adj = sum(bool(change_points(s, max_pvalue=0.01)) for s in series) / len(series)
    assert adj <= 0.02 < raw
    cp = change_points(np.r_[np.ones(10), 1.3 * np.ones(10)] * rng.normal(1.0, 0.01, 20), max_pvalue=0.01)
    assert [c.index for c in cp] == [10] and cp[0].splits == 19
    assert cp[0].p_value == pytest.approx(min(1.0, cp[0].test.p_value * 19))


def _isolated_by_loop(series, rel_bound, k=4.0, side=3):
    """The definition of `isolated_outliers` written as the plain per-position loop it was before it was
    vectorised; the fast version must give the same runs."""
    from common.stats.changepoint import robust_spread

    x = np.asarray(series, dtype=np.float64)
    out: set[int] = set()
    while True:
        keep = [i for i in range(x.size) if i not in out]
        spread = robust_spread(x[keep])
        worst = None
        for pos in range(1, len(keep) - 1):
            i = keep[pos]
            before, after = keep[max(0, pos - side):pos], keep[pos + 1:pos + 1 + side]
            level = float(np.median(x[before + after]))
            bound = max(rel_bound * abs(level), k * spread)
            agree = abs(float(np.median(x[before])) - float(np.median(x[after]))) <= bound
            near = all(abs(float(x[j]) - level) <= bound for j in (keep[pos - 1], keep[pos + 1]))
            dist = abs(float(x[i]) - level)
            if agree and near and dist > bound and (worst is None or dist > worst[0]):
                worst = (dist, i)
        if worst is None:
            return sorted(out)
        out.add(worst[1])


def test_vectorised_isolated_outliers_equal_the_loop_definition():
    from common.stats.changepoint import isolated_outliers

    rng = np.random.default_rng(0)
    for _ in range(600):
        n = int(rng.integers(0, 40))
        x = 1 + 0.02 * rng.standard_normal(n)
        for j in rng.integers(0, max(n, 1), size=int(rng.integers(0, 4))):
            if n:
                x[j] *= rng.choice([1.2, 0.8, 1.5, 1.05])
        if rng.random() < 0.3 and n > 5:
            x[n // 2:] *= 1.2
        rb, k, side = float(rng.choice([0.01, 0.05])), float(rng.choice([2.0, 4.0])), int(rng.choice([1, 3]))
        assert isolated_outliers(x, rb, k, side) == _isolated_by_loop(x, rb, k, side)
