"""Statistics over processes and runs, the units that carry between-state noise (never the samples of one process).

All samples of one process share one machine state (frequency, neighbours, placement), so the samples of one
process cannot say how much a number moves when the process is started again. Here the unit is a process (a
round of `bench run`) or a run (of the history): medians of per-process medians with percentile-bootstrap
intervals over processes (scipy.stats.bootstrap), the between-process robust CoV, a two-group (bimodality)
check, and E-divisive means change points over a run series.

E-divisive is implemented here (Matteson & James 2014, "A nonparametric approach for multiple change point
analysis of multivariate data", JASA; as used by MongoDB's signal-processing-algorithms and datastax-labs/hunter)
because the maintained package, signal-processing-algorithms 2.1.6, pins numpy < 2 and gevent, which conflict
with this project's numpy 2 environment. On series of tens of runs the O(n^2) form below is instant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap

CONFIDENCE = 0.95
N_RESAMPLES = 2000
SEED = 0  # fixed: the same raw data always gives the same interval
MAD_SCALE = 1.4826  # MAD -> standard deviation for normal data


def _clean(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    return a[np.isfinite(a)]


def median_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the median of `values` (one value per process); None for < 2 values.

    With 3 processes the interval is close to [min, max] of the three: honest about how little 3 processes say.
    """
    a = _clean(values)
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
    c, b = _clean(candidate), _clean(baseline)
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
    a = _clean(values)
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
    a = np.sort(_clean(values))
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


# ---- E-divisive means (Matteson & James 2014) ---------------------------------------------------------------
@dataclass(frozen=True)
class ChangePoint:
    index: int  # first position of the new segment
    q: float  # the energy statistic at the split
    p_value: float  # permutation test


def _q_stats(x: np.ndarray, min_size: int) -> tuple[int, float]:
    """The split tau in [min_size, n - min_size] that maximises the scaled energy distance Q(tau) between
    x[:tau] and x[tau:] (alpha = 1): Q = m*k/(m+k) * (2*mean|a-b| - mean_{pairs}|a-a'| - mean_{pairs}|b-b'|)."""
    n = x.size
    d = np.abs(x[:, None] - x[None, :])
    best_tau, best_q = -1, -math.inf
    for tau in range(min_size, n - min_size + 1):
        m, k = tau, n - tau
        between = d[:tau, tau:].mean()
        within_a = d[:tau, :tau].sum() / (m * (m - 1)) if m > 1 else 0.0
        within_b = d[tau:, tau:].sum() / (k * (k - 1)) if k > 1 else 0.0
        q = m * k / (m + k) * (2 * between - within_a - within_b)
        if q > best_q:
            best_tau, best_q = tau, float(q)
    return best_tau, best_q


def e_divisive(series: Sequence[float], alpha: float = 0.05, permutations: int = 199, min_size: int = 2,
               seed: int = SEED) -> list[ChangePoint]:
    """Change points of `series` by E-divisive means: split where the energy statistic peaks, keep the split
    when a permutation test gives p < alpha, recurse into both sides (binary segmentation). Sorted by index."""
    x = _clean(series)
    rng = np.random.default_rng(seed)
    found: list[ChangePoint] = []

    def visit(lo: int, hi: int) -> None:
        seg = x[lo:hi]
        if seg.size < 2 * min_size or np.all(seg == seg[0]):
            return
        tau, q = _q_stats(seg, min_size)
        if tau < 0:
            return
        exceed = sum(1 for _ in range(permutations) if _q_stats(rng.permutation(seg), min_size)[1] >= q)
        p = (exceed + 1) / (permutations + 1)
        if p >= alpha:
            return
        found.append(ChangePoint(lo + tau, q, p))
        visit(lo, lo + tau)
        visit(lo + tau, hi)

    visit(0, x.size)
    return sorted(found, key=lambda c: c.index)
