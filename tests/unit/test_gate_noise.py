"""Run-to-run noise learned from same-config reruns (A/A history): the one-pair rule's false-alarm rate, its MDE at
90% power, and what it says without enough history; checked by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from common.stats.noise import RunNoise, aa_bound, aa_mde, run_noise, step_mde
from harness.gate.baseline import (
    CONSERVATIVE_BOUND,
    IMPROVEMENT,
    INCONCLUSIVE,
    MIN_AA_DF,
    REGRESSION,
    SAME,
    aa_replay,
    baseline_verdict,
    equivalence_bound,
)


def test_noise_is_the_pooled_sd_of_log_values_within_groups() -> None:
    a, b = [1.0, 1.1, 0.95], [2.0, 2.2]
    la, lb = np.log(a), np.log(b)
    ss = float(np.sum((la - la.mean()) ** 2) + np.sum((lb - lb.mean()) ** 2))
    n = run_noise([a, b])
    assert n is not None and (n.df, n.runs, n.groups) == (3, 5, 2) and n.sigma == pytest.approx(math.sqrt(ss / 3))
    assert run_noise([[1.0], [2.0]]) is None


@pytest.mark.parametrize("runs", [5, 10, 20])
def test_the_a_a_false_alarm_rate_is_at_most_alpha(runs: int) -> None:
    """Same-config reruns (lognormal, 3%): the pair newest vs the one before, judged with the history of the
    earlier runs (the baseline among them, as in `bench compare`): flagged in <= alpha = 1% (+ binomial error)."""
    rng = np.random.default_rng(runs)
    trials, alarms = 2000, 0
    for _ in range(trials):
        v = np.exp(rng.normal(0, 0.03, runs + 1))
        alarms += baseline_verdict([v[-2]] * 3, [v[-1]] * 3, [list(v[:-1])], 1e-4, 0.01,
                                   replay=False).verdict in (REGRESSION, IMPROVEMENT)
    assert alarms / trials <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / trials)


@pytest.mark.parametrize("runs", [5, 10, 20])
def test_no_change_hides_a_slowdown_at_the_margin_at_most_5_percent_of_the_time(runs: int) -> None:
    """The claim behind a pass: a slowdown beyond the margin is ruled out at 95%. Plant exactly the margin
    (+10%) at 4% run-to-run noise, where the A/A bound is wide enough that the change is rarely significant:
    "no change" may come out in at most 5% (+ binomial error) of trials."""
    rng = np.random.default_rng(200 + runs)
    trials, passes, inconclusive = 2000, 0, 0
    for _ in range(trials):
        v = np.exp(rng.normal(0, 0.04, runs + 1))
        verdict = baseline_verdict([v[-2]] * 3, [v[-1] * 1.10] * 3, [list(v[:-1])], 0.05, 0.01,
                                   replay=False, margin=0.10).verdict
        passes += verdict == SAME
        inconclusive += verdict == INCONCLUSIVE
    assert passes / trials <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)
    assert inconclusive > 0  # the rule refused to pass instead of saying "no change"


def test_a_change_inside_a_wide_a_a_bound_is_inconclusive_not_no_change() -> None:
    """Measured on the quiet Zen 3: ONNX Runtime l1-int8 +103%, A/A interval [-25%, +445%], was "no change"."""
    history = [[1.0, 1.6, 0.7, 1.3, 0.8, 1.5]]  # run-to-run sd about 30%
    v = baseline_verdict([1.0] * 3, [2.03] * 3, history, 0.05, 0.01)
    assert v.verdict == INCONCLUSIVE and v.upper is not None and v.upper > 1.0
    assert "cannot be ruled out" in v.reason and "margin 10%" in v.reason
    same = baseline_verdict([1.0] * 3, [1.01] * 3, [[1.0, 1.01, 0.99, 1.0, 1.02, 0.98]], 0.05, 0.01)
    assert same.verdict == SAME and same.upper is not None and same.upper < 0.10
    assert "is ruled out at 95%" in same.decided_by
    noise = run_noise([[1.0, 1.01, 0.99, 1.0, 1.02, 0.98]])
    assert noise is not None and same.upper == pytest.approx(math.exp(math.log(1.01) + equivalence_bound(noise)) - 1)


@pytest.mark.parametrize("runs", [5, 10, 20])
def test_the_printed_mde_is_found_with_90_percent_power(runs: int) -> None:
    rng = np.random.default_rng(100 + runs)
    mde = aa_mde(RunNoise(0.03, runs - 1, runs, 1), 0.01)
    trials, found = 2000, 0
    for _ in range(trials):
        v = np.exp(rng.normal(0, 0.03, runs + 1))
        found += baseline_verdict([v[-2]] * 3, [v[-1] * (1 + mde)] * 3, [list(v[:-1])], 1e-4, 0.01,
                                  replay=False).verdict == REGRESSION
    assert abs(found / trials - 0.90) < 0.035


def test_the_bound_has_the_small_sample_correction() -> None:
    """With few runs the bound is a t quantile, not a normal one: 4 df at alpha 1% is 4.60 sigma sqrt 2."""
    assert aa_bound(RunNoise(0.03, 4, 5, 1), 0.01) == pytest.approx(4.604 * 0.03 * math.sqrt(2), rel=1e-3)
    assert aa_bound(RunNoise(0.03, 30, 31, 1), 0.01) == pytest.approx(2.750 * 0.03 * math.sqrt(2), rel=1e-3)
    assert step_mde(0.03, 10, 3, 0.001) is not None and step_mde(0.03, 1, 0, 0.001) is None


def test_a_change_beyond_the_a_a_bound_and_the_threshold_is_called() -> None:
    rng = np.random.default_rng(1)
    history = [list(np.exp(rng.normal(0, 0.02, 10)))]
    slow = baseline_verdict([1.0, 1.01, 0.99], [1.20, 1.21, 1.19], history, 0.05, 0.01)
    assert slow.verdict == REGRESSION and slow.ci is not None and slow.ci[0] > 0 and slow.ci_level == 0.99
    assert "A/A bound" in slow.decided_by and slow.mde is not None and 0.05 <= slow.mde < 0.2
    fast = baseline_verdict([1.20, 1.21, 1.19], [1.0, 1.01, 0.99], history, 0.05, 0.01)
    assert fast.verdict == IMPROVEMENT
    small = baseline_verdict([1.0] * 3, [1.03] * 3, history, 0.05, 0.01)  # inside the bound or the threshold
    assert small.verdict == SAME


def test_within_run_spread_alone_never_calls_a_change() -> None:
    """Processes agree tightly inside each run, the runs differ by 12%: without A/A history that is not enough."""
    v = baseline_verdict([1.0, 1.001, 0.999], [1.12, 1.121, 1.119], [], 0.05, 0.01)
    assert v.verdict == INCONCLUSIVE
    assert f"needs {MIN_AA_DF} ({MIN_AA_DF} more same-config run(s))" in v.reason
    two = baseline_verdict([1.0] * 3, [1.12] * 3, [[1.0, 1.05]], 0.05, 0.01)
    assert f"has 1 df, needs {MIN_AA_DF} ({MIN_AA_DF - 1} more" in two.reason


def test_beyond_the_conservative_bound_with_processes_apart_it_is_called_without_history() -> None:
    """threads=1 against threads=2: +73% with every candidate process slower than every baseline process."""
    v = baseline_verdict([1.0, 1.05, 0.98, 1.02, 1.01], [1.73, 1.70, 1.80, 1.75, 1.72], [], 0.05, 0.01)
    assert v.verdict == REGRESSION and "conservative bound" in v.decided_by and v.ci_level == pytest.approx(0.875)
    stray = baseline_verdict([1.0, 1.05, 0.98, 1.9, 1.01], [1.73, 1.70, 1.80, 1.75, 1.72], [], 0.05, 0.01)
    assert stray.verdict == REGRESSION  # a stray slow baseline process is in a slow mode: the fast levels are apart
    missed = baseline_verdict([1.0, 1.01, 1.32, 1.33, 1.31], [1.32, 1.33, 1.31, 1.62, 1.6], [], 0.05, 0.01)
    assert missed.verdict == INCONCLUSIVE and "slower mode" in missed.reason  # the candidate missed the fast mode
    assert baseline_verdict([1.0] * 3, [1.0 / (1 + CONSERVATIVE_BOUND) - 0.01] * 3, [], 0.05, 0.01).verdict \
        == IMPROVEMENT


def test_the_rule_reports_its_own_false_alarms_on_the_history() -> None:
    flat = [[1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01]]
    pairs, alarms, unsure = aa_replay(flat, 0.05, 0.01)
    assert pairs == 3 and alarms == 0 and unsure == 0  # noise from the runs before each pair: df >= 4 from run 6
    jumpy = [[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.3]]  # the last rerun jumped: the replay counts it as an alarm, and
    assert aa_replay(jumpy, 0.05, 0.01) == (2, 1, 0)  # the earlier pairs are judged without it (it came later)


def test_runs_of_different_code_never_pool_as_aa_noise() -> None:
    """aa_values splits a same-config group by the git commit the runs recorded; a dirty run stands alone."""
    from harness.gate.regression import aa_values, code_version

    def run(i: int, commit: str | None, dirty: bool = False, level: float = 1.0) -> dict:
        return {"run_id": f"r{i}", "created": f"2026-01-0{i}", "fingerprint": {"git": {"commit": commit,
                                                                                         "dirty": dirty}},
                "results": [{"backend": "ov", "variant": "v", "scenario": "latency", "batch_size": 1,
                             "status": "ok", "rounds": [{"p50_ms": level * f} for f in (1.0, 1.01, 0.99)]}]}

    group = [run(1, "a"), run(2, "a"), run(3, "b", level=1.3), run(4, "b", level=1.3), run(5, "a", dirty=True)]
    vals = next(iter(aa_values([group]).values()))
    assert sorted(len(g) for g in vals) == [1, 2, 2]  # a: 2 runs, b: 2 runs, the dirty one alone
    assert all(max(g) / min(g) < 1.01 for g in vals)  # the 30% between the commits is not taken for noise
    assert code_version(run(6, None)) is None and code_version(run(7, "c", dirty=True)) == "c+dirty:r7"
