"""Change points in a series of runs (one value per run, oldest first), the way Apache Otava finds them.

Apache Otava (formerly datastax-labs/hunter; Fleming et al., "Hunter: Using Change Point Detection to Hunt for
Performance Regressions", ICPE 2023) runs E-divisive means (Matteson & James 2014) with a deterministic
significance test instead of the permutation test, which needs tens of points and gives a different answer per
seed:
* split: slide a window of `window` runs (step window / 2) over the series; in each window split recursively where
  the energy statistic Q(tau, kappa) peaks, keeping a split while a two-sample Student t-test between the two sides
  gives p <= a relaxed first-pass level (10x `max_pvalue` below 0.05);
* merge: recompute every candidate's t-test against its neighbouring segments and drop, one at a time, the one
  with the largest p-value while it is >= `max_pvalue`, then the smallest relative change while it is <=
  `min_magnitude`, recomputing the neighbours after each drop.
This module reimplements that algorithm (same statistic, same tie-breaking) and, with `otava=True`, Otava's exact
t-test (population standard deviations, the p-value of the chosen split taken as is), so it reproduces the change
points Otava's own tests publish (tests/unit/test_changepoint.py); nothing is random, so the same series always
gives the same answer. The gate uses two corrections (the default, `otava=False`):
* the sample standard deviation (ddof 1) in the t-test: Student's test is defined on it; the population sd
  understates the spread of a short segment (3 runs: by 18%) and so overstates significance;
* the chosen split's p-value is Bonferroni-adjusted for the choice: E-divisive picks the split where the
  segments differ most, and a t-test of the best of k - 1 possible splits of k runs is not a t-test of one
  fixed split (on flat noise the best of 19 splits gives p < 0.01 far more often than 1%); the p-value is
  multiplied by the number of splits the search could have chosen in that span (capped at 1) where the merge
  step keeps or drops a change point. The split step's relaxed first pass is a screen that only proposes
  candidates, and stays Otava's (population sd, raw p at 10x the level), so both modes propose the same ones.

`isolated_outliers` finds single runs that leave a level that holds before and after them (a transient machine
state, not a change): the gate reports them and removes them before the search, so one bad night can neither
look like a change nor widen a segment's spread enough to hide a later step.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy.stats import ttest_ind_from_stats

from common.stats.intervals import MAD_SCALE

DEFAULT_WINDOW = 30


@dataclass(frozen=True)
class SplitTest:
    """A two-sample t-test between the runs before and after a split (Otava's TTestStats)."""

    p_value: float
    mean_before: float
    mean_after: float
    std_before: float  # sample standard deviations (ddof 1); population ones (ddof 0) in Otava's mode
    std_after: float
    n_before: int
    n_after: int

    @property
    def rel_change(self) -> float:
        """mean_after / mean_before - 1 (0 when the mean before is 0)."""
        return self.mean_after / self.mean_before - 1.0 if self.mean_before else 0.0

    @property
    def magnitude(self) -> float:
        """The larger relative change of the two directions (Otava's change_magnitude)."""
        back = self.mean_before / self.mean_after - 1.0 if self.mean_after else 0.0
        return max(abs(self.rel_change), abs(back))


@dataclass(frozen=True)
class ChangePoint:
    index: int  # first run of the new segment (0-based)
    qhat: float  # the energy statistic that proposed it
    test: SplitTest  # against its neighbouring segments
    splits: int = 1  # splits the search could have chosen in that span: the Bonferroni factor (1 in Otava's mode)

    @property
    def p_value(self) -> float:
        """The t-test's p-value adjusted for the chosen split (raw in Otava's mode)."""
        return min(1.0, self.test.p_value * self.splits)


def split_test(before: Sequence[float] | np.ndarray, after: Sequence[float] | np.ndarray,
               ddof: int = 1) -> SplitTest:
    """Student's two-sample t-test (equal variances, two-sided) between `before` and `after` on their sample
    standard deviations (`ddof=0`: the population ones, as Otava computes it); p = 1 with fewer than 3 values in
    all, or when both sides are constant and equal."""
    a, b = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("both sides of a split need at least one run")
    ma, mb = float(a.mean()), float(b.mean())
    sa, sb = (float(a.std(ddof=ddof)) if a.size >= 2 else 0.0), (float(b.std(ddof=ddof)) if b.size >= 2 else 0.0)
    p = 1.0
    if a.size + b.size > 2:
        with np.errstate(divide="ignore", invalid="ignore"):
            p = float(ttest_ind_from_stats(ma, sa, a.size, mb, sb, b.size).pvalue)
        if not math.isfinite(p):
            p = 1.0 if ma == mb else 0.0
    return SplitTest(p, ma, mb, sa, sb, int(a.size), int(b.size))


def _q_matrix(x: np.ndarray) -> np.ndarray:
    """Q[i, j] = Q(tau = i + 1, kappa = j + 2) over x (0-based, tau < kappa <= len(x)), zeros where kappa <= tau:

        Q = 2/(m+n) sum|X-Y| - 2m/((m+n)(n-1)) sum_{pairs}|X-X'| - 2n/((m+n)(m-1)) sum_{pairs}|Y-Y'|

    with X = x[:tau] (n values) and Y = x[tau:kappa] (m values); a term with n - 1 = 0 or m - 1 = 0 is 0. The
    block sums come from a 2-D prefix sum of the distance matrix: O(len(x)^2) per call."""
    size = x.size
    d = np.abs(x[:, None] - x[None, :])
    c = np.zeros((size + 1, size + 1))
    c[1:, 1:] = d.cumsum(0).cumsum(1)

    def block(r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
        return np.asarray(c[r1, c1] - c[r0, c1] - c[r1, c0] + c[r0, c0])

    tau = np.arange(1, size)[:, None]
    kappa = np.arange(2, size + 1)[None, :]
    tau_b, kappa_b = np.broadcast_arrays(tau, kappa)
    valid = kappa_b > tau_b
    kappa_v = np.where(valid, kappa_b, tau_b + 1)
    zero = np.zeros_like(tau_b)
    n, m = tau_b.astype(np.float64), (kappa_v - tau_b).astype(np.float64)
    between = block(zero, tau_b, tau_b, kappa_v)
    within_x = block(zero, tau_b, zero, tau_b) / 2.0
    within_y = block(tau_b, kappa_v, tau_b, kappa_v) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        cx = np.where(n > 1, 2.0 * m / ((m + n) * (n - 1.0)), 0.0)
        cy = np.where(m > 1, 2.0 * n / ((m + n) * (m - 1.0)), 0.0)
    q = 2.0 / (m + n) * between - cx * within_x - cy * within_y
    return np.where(valid, q, 0.0)


def _candidate(x: np.ndarray, lo: int, hi: int) -> tuple[int, float]:
    """(tau, Q) of the best split of x[lo:hi]: the first maximum of Q in row-major order, as np.argmax gives it."""
    q = _q_matrix(x[lo:hi])
    i, j = np.unravel_index(int(np.argmax(q)), q.shape)
    return lo + int(i) + 1, float(q[i, j])


def _bounds(cps: Sequence[int], size: int) -> list[tuple[int, int]]:
    """The segments [start, stop) that the sorted change points cut [0, size) into (empty ones dropped)."""
    edges = [0, *cps, size]
    return [(a, b) for a, b in pairwise(edges) if a != b]


def _window_splits(x: np.ndarray, max_pvalue: float) -> list[tuple[int, float]]:
    """E-divisive inside one window: split at the best candidate over all segments while its t-test (against the
    rest of its segment on each side) has p <= max_pvalue. Returns (index, qhat), sorted."""
    found: list[tuple[int, float]] = []
    while True:
        segs = [(a, b) for a, b in _bounds([c for c, _ in found], x.size) if b - a > 1]
        if not segs:
            return found
        best: tuple[int, float, int, int] | None = None
        for a, b in segs:
            tau, q = _candidate(x, a, b)
            if best is None or q > best[1]:
                best = (tau, q, a, b)
        assert best is not None
        tau, q, a, b = best
        # the screen at the relaxed first-pass level is Otava's own (population sd, raw p): it only proposes;
        # the merge step judges every change point it keeps with the sample sd and the adjusted p
        if split_test(x[a:tau], x[tau:b], ddof=0).p_value > max_pvalue:
            return found
        found = sorted([*found, (tau, q)])


def _with_tests(x: np.ndarray, cps: list[tuple[int, float]], otava: bool = False) -> list[ChangePoint]:
    """Each change point with its t-test between the segments on either side of it (and, outside Otava's mode,
    the number of splits of that span as its Bonferroni factor)."""
    idx = [c for c, _ in cps]
    edges = [0, *idx, x.size]
    return [ChangePoint(c, q, split_test(x[edges[k]:c], x[c:edges[k + 2]], ddof=0 if otava else 1),
                        1 if otava else max(1, edges[k + 2] - edges[k] - 1)) for k, (c, q) in enumerate(cps)]


def _first_pass_pvalue(max_pvalue: float) -> float:
    if max_pvalue < 0.05:
        return max_pvalue * 10.0
    return max_pvalue * 2.0 if max_pvalue < 0.5 else max_pvalue


def weak_change_points(series: Sequence[float] | np.ndarray, window: int = DEFAULT_WINDOW,
                       max_pvalue: float = 0.001, otava: bool = False) -> list[ChangePoint]:
    """The split step: candidates from sliding windows at the relaxed first-pass level, each with its t-test."""
    if window < 2:
        raise ValueError(f"window must be >= 2 runs, got {window}")
    x = np.asarray(series, dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        raise ValueError("the series holds a non-finite value")
    level = _first_pass_pvalue(max_pvalue)
    step = window // 2
    start = 0
    found: dict[int, float] = {}
    while start < x.size:
        end = min(start + window, x.size)
        new = [(start + c, q) for c, q in _window_splits(x[start:end], level)]
        last = new[-1][0] if new else 0
        start = max(last, start + step)
        for c, q in new:
            found.setdefault(c, q)
    return _with_tests(x, sorted(found.items()), otava)


def change_points(series: Sequence[float] | np.ndarray, *, window: int = DEFAULT_WINDOW, max_pvalue: float = 0.001,
                  min_magnitude: float = 0.0, otava: bool = False) -> list[ChangePoint]:
    """Otava's change points of `series`: the split step, then the merge step keeps a change point only while its
    t-test against the neighbouring segments has p < max_pvalue (adjusted for the chosen split unless `otava`)
    and its relative change exceeds min_magnitude."""
    x = np.asarray(series, dtype=np.float64).reshape(-1)
    cps = weak_change_points(x, window, max_pvalue, otava)
    while cps:
        weakest = max(range(len(cps)), key=lambda k: (cps[k].p_value, -k))  # the first of the largest p
        if cps[weakest].p_value < max_pvalue:
            weakest = min(range(len(cps)), key=lambda k: (cps[k].test.magnitude, k))
            if cps[weakest].test.magnitude > min_magnitude:
                return cps
        del cps[weakest]
        rebuilt = _with_tests(x, [(c.index, c.qhat) for c in cps], otava)
        for k in (weakest, weakest + 1):  # Otava recomputes these two, the others keep their earlier tests
            if 0 <= k < len(cps):
                cps[k] = rebuilt[k]
    return cps


def robust_spread(values: Sequence[float] | np.ndarray) -> float:
    """The run-to-run standard deviation estimated from successive differences (MAD of the differences / sqrt 2,
    scaled to a normal sd): a level shift adds one large difference and moves it little, an outlier two."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 3:
        return 0.0
    diff = np.diff(x)
    return float(MAD_SCALE * np.median(np.abs(diff - np.median(diff))) / math.sqrt(2.0))


def isolated_outliers(series: Sequence[float] | np.ndarray, rel_bound: float, k: float = 4.0,
                      side: int = 3) -> list[int]:
    """Indices of runs (never the first or the newest) that leave a level holding on both sides of them: the
    medians of up to `side` runs before and after agree within the bound, both immediate neighbours lie within
    the bound of their common median and the run lies beyond it, the bound being max(rel_bound x level, k x the
    series' robust run-to-run spread). Found one at a time, most extreme first, each judged with the earlier ones set
    aside. Two slow runs in a row are not isolated: they may be the start of a step."""
    x = np.asarray(series, dtype=np.float64)
    out: set[int] = set()
    while True:
        keep = np.asarray([i for i in range(x.size) if i not in out], dtype=np.int64)
        worst = _most_isolated(x[keep], rel_bound, k, side)
        if worst is None:
            return sorted(out)
        out.add(int(keep[worst]))


def _most_isolated(xs: np.ndarray, rel_bound: float, k: float, side: int) -> int | None:
    """One pass of `isolated_outliers` over the kept runs `xs`: the position of the most extreme isolated run, or
    None. Vectorised over positions (sliding windows, NaN past the ends): a per-position loop of small medians made
    a 1,000-run history take seconds per cell."""
    m = xs.size
    if m < 3:
        return None
    spread = robust_spread(xs)
    pad = np.full(side, np.nan)
    xp = np.concatenate([pad, xs, pad])
    win = np.lib.stride_tricks.sliding_window_view(xp, side)
    pos = np.arange(1, m - 1)
    before, after = win[pos], win[pos + side + 1]  # the up-to-`side` runs before and after each position
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        level = np.nanmedian(np.concatenate([before, after], axis=1), axis=1)
        bound = np.maximum(rel_bound * np.abs(level), k * spread)
        agree = np.abs(np.nanmedian(before, axis=1) - np.nanmedian(after, axis=1)) <= bound
    near = (np.abs(xs[pos - 1] - level) <= bound) & (np.abs(xs[pos + 1] - level) <= bound)
    dist = np.abs(xs[pos] - level)
    ok = agree & near & (dist > bound)
    if not ok.any():
        return None
    return int(pos[np.argmax(np.where(ok, dist, -np.inf))])
