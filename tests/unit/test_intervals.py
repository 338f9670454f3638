"""Statistics over processes and runs: order-statistic intervals and their exact levels, between-process spread,
bimodality (change points: test_changepoint.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from common.stats.intervals import (
    OrderStatCI,
    bimodal,
    median_ci,
    median_ci_level,
    order_statistic_ci,
    order_statistic_level,
    order_statistic_rank,
    ratio_ci,
    robust_cov,
)


@pytest.mark.parametrize(("n", "rank", "level"), [
    (2, 1, 0.5), (3, 1, 0.75), (4, 1, 0.875), (5, 1, 0.9375), (6, 1, 0.96875), (7, 1, 0.984375),
    (8, 1, 1 - 2 / 256), (9, 2, 1 - 2 * 10 / 512), (10, 2, 1 - 2 * 11 / 1024), (12, 3, 1 - 2 * 79 / 4096),
    (20, 6, 1 - 2 * (1 + 20 + 190 + 1140 + 4845 + 15504) / 2**20),
])
def test_order_statistic_interval_levels_are_exact_binomial_values(n: int, rank: int, level: float) -> None:
    """[x_(k), x_(n+1-k)] covers the median with 1 - 2 sum_{i<k} C(n, i) / 2^n; k the narrowest with >= 95%."""
    exact = 1 - 2 * sum(math.comb(n, i) for i in range(rank)) / 2**n
    assert level == pytest.approx(exact, abs=1e-15)
    assert order_statistic_rank(n) == rank
    assert order_statistic_level(n, rank) == pytest.approx(exact, abs=1e-12)
    ci = order_statistic_ci(list(range(n, 0, -1)))
    assert ci is not None and (ci.low, ci.high, ci.rank) == (rank, n + 1 - rank, rank)
    assert ci.level == pytest.approx(exact, abs=1e-12) and median_ci_level(n) == pytest.approx(exact, abs=1e-12)


def test_the_three_levels_the_docs_quote() -> None:
    assert order_statistic_ci([1.0, 1.1, 1.3]) == OrderStatCI(1.0, 1.3, 0.75, 1, 3)  # [min, max] of 3: 75%
    five = order_statistic_ci([5.0, 1.0, 4.0, 2.0, 3.0])
    assert five is not None and (five.low, five.high, five.level) == (1.0, 5.0, 0.9375)
    ten = order_statistic_ci(np.arange(10.0))
    assert ten is not None and (ten.low, ten.high) == (1.0, 8.0) and round(ten.level, 4) == 0.9785  # [2nd, 9th]
    assert order_statistic_ci([0.3]) is None and median_ci([0.3]) is None
    assert median_ci([0.3, 0.3, 0.3]) == (0.3, 0.3)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_order_statistic_interval_covers_as_often_as_it_says(n: int) -> None:
    """Simulated coverage of the true median, on a skewed distribution (lognormal): the printed level, within
    the binomial error of 20000 trials (the bootstrap it replaces covered ~74% at n = 3 while claiming 95%)."""
    rng = np.random.default_rng(n)
    trials = 20_000
    x = np.sort(np.exp(rng.normal(0.0, 0.5, (trials, n))), axis=1)
    k = order_statistic_rank(n)
    covered = float(np.mean((x[:, k - 1] <= 1.0) & (x[:, n - k] >= 1.0)))  # the true median of exp(N(0, s)) is 1
    level = order_statistic_level(n, k)
    assert abs(covered - level) < 4 * math.sqrt(level * (1 - level) / trials)


def test_ratio_interval_combines_both_intervals_with_a_bonferroni_level() -> None:
    rng = np.random.default_rng(2)
    base, slow = rng.normal(1.0, 0.02, 5), rng.normal(1.3, 0.02, 5)
    r, ci, level = ratio_ci(slow, base)
    assert ci is not None and level == pytest.approx(1 - 2 * (1 - 0.9375))
    assert ci == pytest.approx((slow.min() / base.max(), slow.max() / base.min()))
    assert r == pytest.approx(np.median(slow) / np.median(base)) and ci[0] > 1.2
    assert ratio_ci([1.0], [1.0, 1.1])[1] is None


def test_robust_cov_is_the_scaled_mad_over_the_median() -> None:
    assert robust_cov([1.0, 1.0, 1.0]) == 0.0
    assert robust_cov([0.9, 1.0, 1.1]) == pytest.approx(1.4826 * 0.1 / 1.0)
    assert robust_cov([1.0]) is None


def test_bimodal_flags_two_groups_not_one_spread() -> None:
    assert bimodal([0.25, 0.252, 0.251, 0.249, 0.33, 0.332, 0.335, 0.331])
    assert not bimodal([0.25, 0.331, 0.338])  # 3 processes cannot tell two modes from one spread
    assert not bimodal([0.25, 0.26, 0.27, 0.28, 0.29, 0.30, 0.31, 0.32])  # evenly spread: no gap stands out
    assert not bimodal([0.25, 0.251, 0.252, 0.253, 0.254, 0.255, 0.256, 0.40])  # one stray among 8
    assert not bimodal([0.25, 0.25, 0.25, 0.251, 0.40, 0.41, 0.39])  # below BIMODAL_MIN_N


@pytest.mark.parametrize("n", [8, 10, 20])
def test_bimodal_false_positive_rate_on_unimodal_data_is_small(n: int) -> None:
    """On one mode (lognormal and heavy-tailed t3 spreads from 1% to 30%) the flag fires in <= 2% of rows;
    on two modes 30% apart it fires every time."""
    rng = np.random.default_rng(100 + n)
    for sigma in (0.01, 0.03, 0.1, 0.3):
        lognormal = np.mean([bimodal(np.exp(rng.normal(0, sigma, n))) for _ in range(2000)])
        heavy = np.mean([bimodal(1 + sigma * rng.standard_t(3, n)) for _ in range(2000)])
        assert lognormal <= 0.02 and heavy <= 0.02, (sigma, lognormal, heavy)
    two = np.mean([bimodal(np.r_[rng.normal(0.25, 0.003, n // 2), rng.normal(0.33, 0.003, n - n // 2)])
                   for _ in range(500)])
    assert two == 1.0
