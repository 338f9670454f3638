"""Statistics over processes and runs, the units that carry between-state noise (never the samples of one process).

All samples of one process share one machine state (frequency, neighbours, placement), so the samples of one
process cannot say how much a number moves when the process is started again. Here the unit is a process (a
round of `bench run`) or a run (of the history).

The interval of a median over processes is the distribution-free order-statistic interval (the binomial interval
for a median, e.g. Hahn & Meeker, "Statistical Intervals", ch. 5): for n values the interval between the k-th
smallest and the k-th largest covers the true median with probability 1 - 2 P(Bin(n, 1/2) <= k - 1), whatever the
distribution. That level is exact and printed with the interval: 3 processes give [min, max] at 75%, 5 give
[min, max] at 93.75%, 10 give [2nd, 9th] at 97.85%. A percentile bootstrap over 3 values claims 95% and covers
about 74%, which is why it is not used. Change points over a run series live in `common.stats.changepoint`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

CONFIDENCE = 0.95  # the level aimed at; the interval reports the level it really has
SEED = 0  # fixed seeds wherever randomness is used: the same raw data always gives the same answer
MAD_SCALE = 1.4826  # MAD -> standard deviation for normal data
BIMODAL_MIN_N = 8  # fewer processes cannot tell two modes from one spread (3 values almost always show a "gap")
PERCENTILE_FIELDS = ("min", "p50", "p90", "p95", "p99", "mean", "stdev", "iqr", "cov", "rcov")


def finite_values(values: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class OrderStatCI:
    """[k-th smallest, k-th largest] of n values and the exact probability that it covers the median."""

    low: float
    high: float
    level: float
    rank: int  # k: the interval runs from the k-th smallest to the k-th largest value
    n: int

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def order_statistic_level(n: int, k: int) -> float:
    """Coverage of [x_(k), x_(n+1-k)] for the median of any continuous distribution: 1 - 2 P(Bin(n, 1/2) <= k-1)."""
    if n < 2 or not 1 <= k <= n // 2:
        raise ValueError(f"need n >= 2 and 1 <= k <= n // 2, got n={n}, k={k}")
    return float(1.0 - 2.0 * binom.cdf(k - 1, n, 0.5))


def order_statistic_rank(n: int, confidence: float = CONFIDENCE) -> int:
    """The largest k (narrowest interval) whose level is >= `confidence`; 1 ([min, max]) when none reaches it."""
    best = 1
    for k in range(1, n // 2 + 1):
        if order_statistic_level(n, k) >= confidence:
            best = k
    return best


def order_statistic_ci(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> OrderStatCI | None:
    """The distribution-free interval of the median of `values` (one per process or run) with its real level;
    None for < 2 values. With few values the level is below `confidence` and says so (3 values: 75%)."""
    a = np.sort(finite_values(values))
    n = int(a.size)
    if n < 2:
        return None
    k = order_statistic_rank(n, confidence)
    return OrderStatCI(float(a[k - 1]), float(a[n - k]), order_statistic_level(n, k), k, n)


def median_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """(low, high) of `order_statistic_ci`; its level is `median_ci_level(len(values))`."""
    ci = order_statistic_ci(values, confidence)
    return (ci.low, ci.high) if ci else None


def median_ci_level(n: int, confidence: float = CONFIDENCE) -> float | None:
    """The real level of the median interval over n values (None below 2)."""
    return order_statistic_level(n, order_statistic_rank(n, confidence)) if n >= 2 else None


def ratio_ci(candidate: Sequence[float], baseline: Sequence[float],
             confidence: float = CONFIDENCE) -> tuple[float, tuple[float, float] | None, float | None]:
    """(median(candidate) / median(baseline), [low_c / high_b, high_c / low_b], its level): the two medians'
    order-statistic intervals combined; the level is the Bonferroni bound 1 - (1 - level_c) - (1 - level_b)
    (both intervals cover at once at least that often). The interval is None with < 2 values on a side."""
    c, b = finite_values(candidate), finite_values(baseline)
    if c.size == 0 or b.size == 0 or float(np.median(b)) <= 0:
        return math.nan, None, None
    ratio = float(np.median(c) / np.median(b))
    ci_c, ci_b = order_statistic_ci(c, confidence), order_statistic_ci(b, confidence)
    if ci_c is None or ci_b is None or ci_b.low <= 0:
        return ratio, None, None
    level = max(0.0, 1.0 - (1.0 - ci_c.level) - (1.0 - ci_b.level))
    return ratio, (ci_c.low / ci_b.high, ci_c.high / ci_b.low), level


def percentiles_over_processes(per_process: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The one definition of a row's latency statistics: each field (PERCENTILE_FIELDS) is the median over the
    processes of that process's own value. Medians of per-process values keep their order (every process has
    p95 <= p99, so the medians do too), which pooling some fields and not others does not."""
    out: dict[str, float] = {}
    for f in PERCENTILE_FIELDS:
        vals = [float(p[f]) for p in per_process if isinstance(p.get(f), int | float) and math.isfinite(p[f])]
        if vals:
            out[f] = float(np.median(vals))
    return out


def robust_cov(values: Sequence[float]) -> float | None:
    """1.4826 * MAD / median of `values` (None for < 2 values): the spread between processes."""
    a = finite_values(values)
    if a.size < 2:
        return None
    mid = float(np.median(a))
    return MAD_SCALE * float(np.median(np.abs(a - mid))) / mid if mid > 0 else None


def bimodal(values: Sequence[float], min_gap: float = 0.05, min_n: int = BIMODAL_MIN_N) -> bool:
    """True when the values (per-process medians) split into two groups: the widest gap between sorted
    neighbours is at least `min_gap` of the median AND at least twice the spread inside either group, each group
    holding at least a quarter of the values (and 2). Never with fewer than `min_n` values: with 3 values almost
    any spacing looks like two groups (10 of 12 rows of a quiet run were flagged so); the false-positive rate on
    unimodal data is tested by simulation (tests/unit/test_intervals.py)."""
    a = np.sort(finite_values(values))
    n = a.size
    if n < max(4, min_n):
        return False
    k = max(2, n // 4)
    mid = float(np.median(a))
    for i in range(k, n - k + 1):  # split between a[i-1] and a[i]
        lo, hi = a[:i], a[i:]
        gap = float(hi[0] - lo[-1])
        inner = max(float(lo[-1] - lo[0]), float(hi[-1] - hi[0]))
        if gap >= min_gap * mid and gap >= 2.0 * inner:
            return True
    return False
