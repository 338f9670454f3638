"""Small statistics for reports and comparisons: accuracy from a confusion matrix, its bootstrap
confidence interval, and a two-proportion test for an accuracy change.

Everything is reproducible from stored raw data: the CI is computed from the confusion matrix
(correct / incorrect counts) with a fixed seed, so the same run always prints the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_BOOTSTRAP = 4000


@dataclass(frozen=True)
class AccuracyCI:
    """Top-1 accuracy with a percentile bootstrap interval (fractions in [0, 1])."""

    correct: int
    total: int
    low: float
    high: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")


def counts_from_confusion(confusion: Sequence[Sequence[float]] | None) -> tuple[int, int] | None:
    """(correct, total) from a square confusion matrix (rows: true class); None if absent or malformed."""
    if confusion is None:
        return None
    try:
        cm = np.asarray(confusion, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.size == 0 or not np.isfinite(cm).all():
        return None
    total = round(float(cm.sum()))
    if total <= 0:
        return None
    return round(float(np.trace(cm))), total


def bootstrap_accuracy_ci(
    correct: int, total: int, *, level: float = 0.95, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0
) -> AccuracyCI:
    """Percentile bootstrap CI of accuracy: resample the `total` correct/incorrect outcomes with replacement.

    Resampling n Bernoulli outcomes with replacement and counting the correct ones is a binomial draw,
    so the bootstrap is done exactly and fast with `rng.binomial`.
    """
    if total <= 0 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total > 0, got {correct}/{total}")
    rng = np.random.default_rng(seed)
    draws = rng.binomial(total, correct / total, size=n_boot) / total
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return AccuracyCI(correct=correct, total=total, low=float(low), high=float(high))


def accuracy_ci(row: dict[str, Any], *, level: float = 0.95) -> AccuracyCI | None:
    """The bootstrap CI of a result row's accuracy from its confusion matrix (None without one)."""
    counts = counts_from_confusion(row.get("confusion"))
    if counts is None:
        return None
    return bootstrap_accuracy_ci(*counts, level=level)


def two_proportion_pvalue(c1: int, n1: int, c2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test for c1/n1 versus c2/n2."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both totals must be positive")
    p1, p2 = c1 / n1, c2 / n2
    pooled = (c1 + c2) / (n1 + n2)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    if se == 0.0:
        return 1.0 if p1 == p2 else 0.0
    z = (p1 - p2) / se
    return math.erfc(abs(z) / math.sqrt(2.0))
