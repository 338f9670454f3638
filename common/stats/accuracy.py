"""Small statistics for reports and comparisons: accuracy from a confusion matrix, its bootstrap
confidence interval, per-image correctness stored compactly, and McNemar's exact test for an accuracy change.

Two runs score the same test images, so their predictions are paired: McNemar's exact test looks only at the
images one run got right and the other wrong (b and c) and asks whether c ~ Binomial(b + c, 1/2) (scipy's
binomtest). A two-proportion z-test treats the runs as independent samples and misses a change that the pairs
show plainly (21 images lost, none gained, on 2100: z-test p = 0.37, McNemar p = 1e-6).

Everything is reproducible from stored raw data: the CI is computed from the confusion matrix
(correct / incorrect counts) with a fixed seed, so the same run always prints the same interval.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest

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


def labels_digest(labels: Sequence[int] | np.ndarray) -> str:
    """A short hash of the test labels in order: two runs' correctness bits pair up only on the same images."""
    return hashlib.sha256(np.asarray(labels, dtype="<i8").tobytes()).hexdigest()[:16]


def pack_correct(correct: Sequence[bool] | np.ndarray, labels: Sequence[int] | np.ndarray) -> dict[str, Any]:
    """Per-image correctness as a compact JSON object: {"n", "bits" (base64 of np.packbits), "labels"}:
    2,100 images are 263 bytes (352 characters)."""
    c = np.asarray(correct, dtype=bool).reshape(-1)
    return {"n": int(c.size), "bits": base64.b64encode(np.packbits(c).tobytes()).decode("ascii"),
            "labels": labels_digest(labels)}


def unpack_correct(packed: Any) -> np.ndarray | None:
    """The boolean correctness vector of `pack_correct`'s object; None if absent or malformed."""
    if not isinstance(packed, dict) or not isinstance(packed.get("n"), int) or not isinstance(packed.get("bits"), str):
        return None
    try:
        raw = np.frombuffer(base64.b64decode(packed["bits"], validate=True), dtype=np.uint8)
    except (ValueError, TypeError):
        return None
    n = int(packed["n"])
    if n <= 0 or raw.size != (n + 7) // 8:
        return None
    return np.unpackbits(raw)[:n].astype(bool)


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test between a reference run and a candidate on the same images."""

    n: int  # images
    lost: int  # b: right in the reference, wrong in the candidate
    gained: int  # c: wrong in the reference, right in the candidate
    p_value: float

    @property
    def change(self) -> float:
        """Candidate accuracy minus reference accuracy."""
        return (self.gained - self.lost) / self.n if self.n else 0.0


def mcnemar_pvalue(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p-value: binomial test of `gained` out of the `lost + gained` discordant pairs."""
    if lost < 0 or gained < 0:
        raise ValueError("counts must be >= 0")
    if lost + gained == 0:
        return 1.0
    return float(binomtest(gained, lost + gained, 0.5).pvalue)


def mcnemar(reference: Sequence[bool] | np.ndarray, candidate: Sequence[bool] | np.ndarray) -> McNemar:
    """McNemar's exact test on two runs' per-image correctness (the same images, in the same order)."""
    r, c = np.asarray(reference, dtype=bool), np.asarray(candidate, dtype=bool)
    if r.shape != c.shape:
        raise ValueError(f"paired predictions need the same images: {r.size} vs {c.size}")
    lost, gained = int(np.sum(r & ~c)), int(np.sum(~r & c))
    return McNemar(int(r.size), lost, gained, mcnemar_pvalue(lost, gained))


def mcnemar_min_pvalue(net: int) -> float:
    """The smallest McNemar p-value any pairing can give for a net change of `net` images (all discordant pairs
    one way: b = 0, c = |net|): 2 x 0.5^|net|, capped at 1. When even this is >= alpha, the change is not
    significant whatever the per-image predictions were; and equal counts (net 0) give p = 1 exactly."""
    return min(1.0, 2.0 * 0.5 ** abs(int(net)))
