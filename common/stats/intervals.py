"""Statistics over processes and runs, the units that carry between-state noise (never the samples of one process).

All samples of one process share one machine state (frequency, neighbours, placement), so the samples of one
process cannot say how much a number moves when the process is started again. Here the unit is a process (a
round of `bench run`) or a run (of the history): medians of per-process medians with percentile-bootstrap
intervals over processes (scipy.stats.bootstrap), the between-process robust CoV and a two-group (bimodality)
check. Change points over a run series live in `common.stats.changepoint`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import bootstrap

CONFIDENCE = 0.95
N_RESAMPLES = 2000
SEED = 0  # fixed: the same raw data always gives the same interval
MAD_SCALE = 1.4826  # MAD -> standard deviation for normal data


def finite_values(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    return a[np.isfinite(a)]


def median_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the median of `values` (one value per process); None for < 2 values.

    With 3 processes the interval is close to [min, max] of the three: honest about how little 3 processes say.
    """
    a = finite_values(values)
    if a.size < 2:
        return None
    if np.all(a == a[0]):
        return float(a[0]), float(a[0])
    res = bootstrap((a,), np.median, confidence_level=confidence, n_resamples=N_RESAMPLES, method="percentile",
                    rng=np.random.default_rng(SEED), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def ratio_ci(candidate: Sequence[float], baseline: Sequence[float],
             confidence: float = CONFIDENCE) -> tuple[float, tuple[float, float] | None]:
    """(median(candidate) / median(baseline), its percentile-bootstrap interval resampling each side
    independently); the interval is None when either side has < 2 values."""
    c, b = finite_values(candidate), finite_values(baseline)
    if c.size == 0 or b.size == 0 or float(np.median(b)) <= 0:
        return math.nan, None
    ratio = float(np.median(c) / np.median(b))
    if c.size < 2 or b.size < 2:
        return ratio, None

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(np.median(x, axis=axis) / np.median(y, axis=axis))

    res = bootstrap((c, b), stat, confidence_level=confidence, n_resamples=N_RESAMPLES, method="percentile",
                    rng=np.random.default_rng(SEED), vectorized=True, paired=False)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # degenerate (all resamples equal): the point itself
        lo = hi = ratio
    return ratio, (min(lo, ratio), max(hi, ratio))


def robust_cov(values: Sequence[float]) -> float | None:
    """1.4826 * MAD / median of `values` (None for < 2 values): the spread between processes."""
    a = finite_values(values)
    if a.size < 2:
        return None
    mid = float(np.median(a))
    return MAD_SCALE * float(np.median(np.abs(a - mid))) / mid if mid > 0 else None


def bimodal(values: Sequence[float], min_gap: float = 0.05) -> bool:
    """True when the values (per-process medians) split into two groups: the widest gap between sorted
    neighbours is at least `min_gap` of the median AND at least twice the spread inside either group.

    Each group needs max(1, n // 4) members, so 3 processes can show a split (0.25, 0.33, 0.33 ms: a state
    change between processes) but one stray process among 8 is not a second mode.
    """
    a = np.sort(finite_values(values))
    n = a.size
    if n < 3:
        return False
    k = max(1, n // 4)
    mid = float(np.median(a))
    best = False
    for i in range(k, n - k + 1):  # split between a[i-1] and a[i]
        lo, hi = a[:i], a[i:]
        gap = float(hi[0] - lo[-1])
        inner = max(float(lo[-1] - lo[0]), float(hi[-1] - hi[0]))
        if gap >= min_gap * mid and gap >= 2.0 * inner:
            best = True
    return best
