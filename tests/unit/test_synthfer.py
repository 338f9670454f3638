"""SynthFER: deterministic, balanced, 48x48 uint8, and not separable by trivial pixel statistics."""

from __future__ import annotations

import numpy as np
import pytest

from fer.classes import NUM_CLASSES
from fer.data import FerData
from fer.synthfer import generate_synthfer


@pytest.fixture(scope="module")
def data() -> FerData:
    return generate_synthfer(1400, 140, 700, seed=0)


def test_same_seed_gives_identical_bytes(data: FerData) -> None:
    again = generate_synthfer(1400, 140, 700, seed=0)
    assert again.digest() == data.digest()
    assert np.array_equal(again.train.images, data.train.images)


def test_different_seed_gives_different_images(data: FerData) -> None:
    other = generate_synthfer(1400, 140, 700, seed=1)
    assert other.digest() != data.digest()
    assert np.mean(other.train.images != data.train.images) > 0.5


def test_val_and_test_do_not_depend_on_train_size() -> None:
    a = generate_synthfer(70, 70, 70, seed=5)
    b = generate_synthfer(140, 70, 70, seed=5)
    assert np.array_equal(a.test.images, b.test.images)
    assert np.array_equal(a.val.labels, b.val.labels)
    assert not np.array_equal(a.train.images, b.train.images[:70])  # own stream per split


def test_shapes_dtypes_and_balance(data: FerData) -> None:
    assert data.name == "synthfer" and data.synthetic
    for split, n in (("train", 1400), ("val", 140), ("test", 700)):
        s = data.split(split)
        assert s.images.shape == (n, 48, 48) and s.images.dtype == np.uint8
        assert s.labels.dtype == np.int64
        counts = np.bincount(s.labels, minlength=NUM_CLASSES)
        assert counts.tolist() == [n // NUM_CLASSES] * NUM_CLASSES
    # labels are shuffled, not in blocks
    assert len(set(data.train.labels[:14].tolist())) > 3
    # images use the range and are not blank
    assert data.train.images.std() > 30 and data.train.images.min() < 20 and data.train.images.max() > 235


def test_uneven_sizes_stay_balanced_within_one() -> None:
    d = generate_synthfer(75, 71, 80, seed=2)
    for s in (d.train, d.val, d.test):
        counts = np.bincount(s.labels, minlength=NUM_CLASSES)
        assert counts.sum() == len(s) and counts.max() - counts.min() <= 1


def test_not_trivially_separable(data: FerData) -> None:
    x_tr = data.train.images.reshape(len(data.train), -1).astype(np.float32)
    x_te = data.test.images.reshape(len(data.test), -1).astype(np.float32)
    means = np.stack([x_tr[data.train.labels == c].mean(0) for c in range(NUM_CLASSES)])
    dist = ((x_te[:, None, :] - means[None]) ** 2).sum(-1)
    ncm = float(np.mean(dist.argmin(1) == data.test.labels))
    assert ncm < 0.6, f"nearest class mean on raw pixels reaches {ncm:.2f}"
    # mean intensity alone says (almost) nothing about the class
    m_tr, m_te = x_tr.mean(1), x_te.mean(1)
    centres = np.array([m_tr[data.train.labels == c].mean() for c in range(NUM_CLASSES)])
    by_mean = float(np.mean(np.abs(m_te[:, None] - centres[None]).argmin(1) == data.test.labels))
    assert by_mean < 0.25


def test_too_small_split_is_refused() -> None:
    with pytest.raises(ValueError, match="n_val"):
        generate_synthfer(70, 3, 70, seed=0)
