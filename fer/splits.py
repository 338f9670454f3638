"""Seeded split helpers: a stratified hold-out (val carved from train) and subject-independent k-fold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from common.errors import UserError
from fer.data import Split


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep, holdout) index arrays: per class a seeded `fraction` is held out (>= 1 where a class has 2+)."""
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    hold: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n = min(max(round(len(idx) * fraction), 1), len(idx) - 1) if len(idx) >= 2 else 0
        hold.append(idx[:n])
        keep.append(idx[n:])
    empty = np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate([empty, *keep])), np.sort(np.concatenate([empty, *hold]))


def subject_split(
    subjects: Sequence[str], folds: int, fold: int, seed: int, what: str
) -> dict[str, set[str]]:
    """Subjects -> train/val/test: test = fold `fold` of `folds`, val = the next fold, train = the rest.

    Subjects are dealt into folds after a seeded shuffle. With 2 folds, val is a seeded ~10% subject subset
    of the non-test fold. No subject is in two splits.
    """
    unique = sorted(set(subjects))
    if not 2 <= folds <= len(unique):
        raise UserError(
            f"data.folds = {folds}: {what} has {len(unique)} subjects; use 2 to {len(unique)} folds"
        )
    if not 0 <= fold < folds:
        raise UserError(f"data.fold = {fold}: must be between 0 and data.folds - 1 = {folds - 1}")
    if len(unique) < 3:
        raise UserError(f"{what} has {len(unique)} subjects; subject-independent splits need at least 3")
    rng = np.random.default_rng(seed)
    order = [unique[i] for i in rng.permutation(len(unique))]
    fold_of = {s: i % folds for i, s in enumerate(order)}
    test = {s for s in order if fold_of[s] == fold}
    if folds >= 3:
        val = {s for s in order if fold_of[s] == (fold + 1) % folds}
    else:
        rest = [s for s in order if s not in test]
        val = set(rest[: min(max(round(len(rest) * 0.1), 1), len(rest) - 1)])
    train = set(unique) - test - val
    return {"train": train, "val": val, "test": test}


def splits_by_subject(
    images: np.ndarray, labels: np.ndarray, subjects: Sequence[str], assignment: dict[str, set[str]]
) -> tuple[Split, Split, Split]:
    """(train, val, test) Splits from per-image subjects and a `subject_split` assignment."""
    subj = np.asarray(subjects)
    out = []
    for name in ("train", "val", "test"):
        mask = np.isin(subj, sorted(assignment[name]))
        out.append(Split(images[mask], labels[mask].astype(np.int64)))
    return out[0], out[1], out[2]
