"""The PyTorch reference logits cache: keyed by the artifact's file hashes, the test images and the settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.measure.agreement import _store_reference, reference_cache_path, reference_key
from harness.measure.settings import CellSettings


def _artifact(root: Path, sha: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps({"files": {"model.pt": {"bytes": 10, "sha256": sha}}}))
    return root


def test_key_follows_artifact_hashes_images_and_settings(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    images = tmp_path / "images.npy"
    np.save(images, np.zeros((4, 1, 48, 48), np.float32))
    a = _artifact(tmp_path / "a", "aa" * 32)
    same_files = _artifact(tmp_path / "elsewhere", "aa" * 32)
    other = _artifact(tmp_path / "b", "bb" * 32)
    extra = {"device": "cpu", "int8_mode": "fake-quant"}
    key = reference_cache_path(cache, a, images, extra)
    assert key is not None and key.parent == tmp_path / "cache" / "reference-logits"
    assert reference_cache_path(cache, same_files, images, extra) == key  # same files, other directory: a hit
    assert reference_cache_path(cache, other, images, extra) != key
    assert reference_cache_path(cache, a, images, {**extra, "int8_mode": "native"}) != key
    np.save(images, np.ones((4, 1, 48, 48), np.float32))
    assert reference_cache_path(cache, a, images, extra) != key
    key = reference_cache_path(cache, a, images, extra)
    import torch

    assert reference_cache_path(cache, a, images, extra, torch_version=torch.__version__) == key  # the installed one
    assert reference_cache_path(cache, a, images, extra, torch_version="1.0.0") != key  # an upgrade: a new key
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "manifest.json").write_text("{}")
    assert reference_cache_path(cache, tmp_path / "c", images, extra) is None  # no hashes: never cached


def test_stored_reference_round_trips(tmp_path: Path) -> None:
    src = tmp_path / "ref.npy"
    logits = np.arange(14, dtype=np.float32).reshape(2, 7)
    np.save(src, logits)
    dest = tmp_path / "cache" / "reference-logits" / "k.npy"
    _store_reference(src, dest, dest.with_suffix(".json"), "fp32")
    assert np.array_equal(np.load(dest), logits)
    assert json.loads(dest.with_suffix(".json").read_text()) == {"name": "fp32"}


def test_key_names_the_reference_runtime_and_its_version(monkeypatch) -> None:
    """A torch (or onnxruntime) upgrade must not reuse logits computed by the old version."""
    import harness.measure.agreement as agreement

    s = CellSettings(threads=1, batch_sizes=(1,), warmup_s=0.0, min_duration_s=0.1, min_iterations=10, max_cov=0.25,
                     accuracy=True, timeout_s=60, memory_mb=0)
    torch_key, ort_key = reference_key(s, "torch-eager"), reference_key(s, "onnxruntime")
    assert torch_key["reference_backend"] == "torch-eager" and torch_key["device"] == "cpu"
    assert ort_key == {"provider": "cpu", "optimization": "disable", "reference_backend": "onnxruntime",
                       "runtime_version": ort_key["runtime_version"]}
    monkeypatch.setattr(agreement, "_runtime_version", lambda backend: "99.0")
    assert reference_key(s, "torch-eager")["runtime_version"] == "99.0" != torch_key["runtime_version"]
