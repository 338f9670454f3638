"""Statistics over processes and runs: intervals, between-process spread, bimodality, E-divisive change points."""

from __future__ import annotations

import numpy as np
import pytest

from common.stats.changepoint import e_divisive
from common.stats.intervals import bimodal, median_ci, ratio_ci, robust_cov


def test_median_ci_contains_the_median_and_narrows_with_more_processes() -> None:
    rng = np.random.default_rng(1)
    few = rng.normal(1.0, 0.05, 5)
    many = rng.normal(1.0, 0.05, 60)
    lo_f, hi_f = median_ci(few) or (0, 0)
    lo_m, hi_m = median_ci(many) or (0, 0)
    assert lo_f <= np.median(few) <= hi_f
    assert lo_m <= np.median(many) <= hi_m
    assert hi_m - lo_m < hi_f - lo_f
    assert 0.9 < lo_m < 1.0 < hi_m < 1.1


def test_median_ci_of_three_processes_spans_them_and_none_for_one() -> None:
    lo, hi = median_ci([0.25, 0.33, 0.34]) or (0, 0)
    assert lo == pytest.approx(0.25) and hi == pytest.approx(0.34)
    assert median_ci([0.3]) is None
    assert median_ci([0.3, 0.3, 0.3]) == (0.3, 0.3)


def test_median_ci_is_reproducible() -> None:
    vals = [0.251, 0.262, 0.249, 0.270, 0.255]
    assert median_ci(vals) == median_ci(vals)


def test_ratio_ci_excludes_one_only_for_a_real_shift() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(1.0, 0.02, 6)
    same = rng.normal(1.0, 0.02, 6)
    slow = rng.normal(1.3, 0.02, 6)
    r_same, ci_same = ratio_ci(same, base)
    r_slow, ci_slow = ratio_ci(slow, base)
    assert ci_same is not None and ci_slow is not None
    assert ci_same[0] <= 1.0 <= ci_same[1] and abs(r_same - 1) < 0.05
    assert ci_slow[0] > 1.2 and r_slow == pytest.approx(np.median(slow) / np.median(base))
    assert ratio_ci([1.0], [1.0, 1.1])[1] is None


def test_robust_cov_is_the_scaled_mad_over_the_median() -> None:
    assert robust_cov([1.0, 1.0, 1.0]) == 0.0
    assert robust_cov([0.9, 1.0, 1.1]) == pytest.approx(1.4826 * 0.1 / 1.0)
    assert robust_cov([1.0]) is None


def test_bimodal_flags_two_groups_not_one_spread() -> None:
    assert bimodal([0.25, 0.331, 0.338])  # the three runs: two machine states
    assert bimodal([0.25, 0.252, 0.251, 0.33, 0.332, 0.335])
    assert not bimodal([0.25, 0.26, 0.27, 0.28, 0.29, 0.30])  # evenly spread: no gap stands out
    assert not bimodal([0.250, 0.252, 0.254])  # within 5%
    assert not bimodal([0.25, 0.251, 0.252, 0.253, 0.254, 0.255, 0.256, 0.40])  # one stray among 8
    assert not bimodal([0.25, 0.33])


def test_e_divisive_finds_a_planted_shift_and_nothing_in_noise() -> None:
    rng = np.random.default_rng(3)
    flat = rng.normal(1.0, 0.02, 20)
    assert e_divisive(flat) == []
    shifted = np.concatenate([rng.normal(1.0, 0.02, 12), rng.normal(1.2, 0.02, 8)])
    cps = e_divisive(shifted)
    assert [c.index for c in cps] == [12]
    assert cps[0].p_value < 0.05


def test_e_divisive_finds_two_shifts() -> None:
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(1.0, 0.01, 10), rng.normal(1.3, 0.01, 10), rng.normal(1.1, 0.01, 10)])
    assert [c.index for c in e_divisive(x)] == [10, 20]
