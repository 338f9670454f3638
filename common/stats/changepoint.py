"""E-divisive means change points over a run series (one value per run, oldest first).

Implemented here (Matteson & James 2014, "A nonparametric approach for multiple change point analysis of
multivariate data", JASA; as used by MongoDB's signal-processing-algorithms and Apache Otava, the former
datastax-labs/hunter) because the maintained package, signal-processing-algorithms 2.1.6, pins numpy < 2 and
gevent, which conflict with this project's numpy 2 environment. On series of tens of runs the O(n^2) form is
instant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from common.stats.intervals import SEED, finite_values


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
    x = finite_values(series)
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
