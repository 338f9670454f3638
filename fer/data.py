"""In-memory data set contract shared by every loader: uint8 48x48 grayscale images and int64 labels."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from common.errors import UserError
from fer.classes import EMOTIONS, IMAGE_SIZE, NUM_CLASSES

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """One split: images [N, 48, 48] uint8 and labels [N] int64 in FER2013 order."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"images must be [N, {IMAGE_SIZE}, {IMAGE_SIZE}], got {self.images.shape}")
        if self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {self.images.dtype}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must be [{self.images.shape[0]}], got {self.labels.shape}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> dict[str, int]:
        """Number of images per emotion, every emotion present (0 where absent)."""
        counts = np.bincount(self.labels, minlength=NUM_CLASSES)
        return {name: int(counts[i]) for i, name in enumerate(EMOTIONS)}

    def as_float(self) -> np.ndarray:
        """Model input: [N, 1, 48, 48] float32 scaled to [0, 1] (no mean/std shift; BN absorbs it)."""
        return (self.images.astype(np.float32) / 255.0)[:, None, :, :]


@dataclass(frozen=True)
class FerData:
    """A data set with its three splits. `synthetic` marks SynthFER so that every report can label it."""

    name: str
    train: Split
    val: Split
    test: Split
    synthetic: bool = False
    notes: dict[str, str] = field(default_factory=dict)

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise UserError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        part: Split = getattr(self, name)
        return part

    def digest(self) -> str:
        """sha256 of every split's pixels and labels: keys caches of anything trained on this data."""
        h = hashlib.sha256(self.name.encode())
        for s in SPLITS:
            part = self.split(s)
            h.update(s.encode())
            h.update(np.ascontiguousarray(part.images).tobytes())
            h.update(np.ascontiguousarray(part.labels.astype(np.int64)).tobytes())
        return h.hexdigest()

    def summary(self) -> dict[str, object]:
        """`bench data --json` shape: {"dataset", "synthetic", "splits": {split: {emotion: n}}}."""
        return {
            "dataset": self.name,
            "synthetic": self.synthetic,
            "splits": {s: self.split(s).class_counts() for s in SPLITS},
        }


def check_nonempty(data: FerData, source: str) -> None:
    """Refuse a data set with an empty split (a user data problem). Empty class folders are the loaders' check."""
    for s in SPLITS:
        if len(data.split(s)) == 0:
            raise UserError(f"{source}: split {s!r} is empty; every split needs images")
