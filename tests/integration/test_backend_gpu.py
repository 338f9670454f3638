"""GPU backends (torch-eager on CUDA, TensorRT): run where an NVIDIA GPU (and TensorRT) exist, skip elsewhere."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from backends.artifact import load_artifact
from backends.base import BackendOptions
from backends.registry import get_backend_class
from backends.torch_model import FAKE_QUANT_LABEL, load_reference

HAS_CUDA = torch.cuda.is_available()
HAS_TRT = importlib.util.find_spec("tensorrt") is not None
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no NVIDIA GPU/CUDA (torch.cuda.is_available() is False)")
needs_trt = pytest.mark.skipif(not (HAS_CUDA and HAS_TRT),
                               reason="needs an NVIDIA GPU and TensorRT (`pip install .[tensorrt]`)")


def _reference(path: Path, x: np.ndarray) -> np.ndarray:
    model, _ = load_reference(load_artifact(path))
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.gpu
@needs_cuda
def test_torch_eager_cuda_matches_cpu_reference(artifacts: dict[str, Path], tiny_data: object) -> None:
    x = np.ascontiguousarray(tiny_data.test.as_float()[:8])  # type: ignore[attr-defined]
    for variant, path in artifacts.items():
        b = get_backend_class("torch-eager")()
        b.load(load_artifact(path), BackendOptions(threads=1, batch_sizes=(1, 8), extra={"device": "cuda"}))
        out = b.infer(x)
        d = b.describe()
        b.close()
        ref = _reference(path, x)
        assert d["device"].startswith("cuda:") and d["tf32"] is False and d["gpu_memory_bytes"] > 0
        if variant.endswith("int8"):
            assert d["label"] == FAKE_QUANT_LABEL  # no eager int8 kernels on CUDA: labelled as simulated
        assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.9
        assert np.abs(out - ref).max() <= 0.05 * np.abs(ref).max() + 1e-4


@pytest.mark.gpu
@needs_trt
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_tensorrt_builds_caches_and_matches_reference(artifacts: dict[str, Path], tiny_data: object,
                                                      cuda_graphs: bool) -> None:
    x = np.ascontiguousarray(tiny_data.test.as_float()[:8])  # type: ignore[attr-defined]
    opts = BackendOptions(threads=1, batch_sizes=(1, 8), extra={"workspace_mb": 256, "cuda_graphs": cuda_graphs})
    for variant, path in artifacts.items():
        art = load_artifact(path)
        b = get_backend_class("tensorrt")()
        b.load(art, opts)
        one, eight, five = b.infer(x[:1]), b.infer(x), b.infer(x[:5])  # 5: between profiles' opt sizes
        d = b.describe()
        b.close()
        again = get_backend_class("tensorrt")()
        again.load(art, opts)
        assert again.describe()["plan_reused"] is True and again.describe()["plan_key"] == d["plan_key"]
        again.close()
        ref = _reference(path, x)
        assert one.shape == (1, 7) and eight.shape == (8, 7) and five.shape == (5, 7)
        assert (eight.argmax(1) == ref.argmax(1)).mean() >= 0.9, variant
        assert d["profiles"] == [[1, 1, 1], [2, 8, 8]] and d["cuda_graphs"] is cuda_graphs
        if variant.endswith("int8"):
            assert d["int8_layers"] >= 13, d
        else:
            assert d["int8_layers"] == 0 and d["tf32"] is False


@pytest.mark.gpu
@needs_cuda
def test_torch_eager_cuda_timing_split_adds_up(artifacts: dict[str, Path], tiny_data: object) -> None:
    """trtexec-style split on a real GPU: device phases are positive and fit inside the end-to-end time."""
    x = np.ascontiguousarray(tiny_data.test.as_float()[:8])  # type: ignore[attr-defined]
    b = get_backend_class("torch-eager")()
    b.load(load_artifact(artifacts["dense-fp32"]), BackendOptions(threads=1, extra={"device": "cuda"}))
    for batch in (x[:1], x):
        s = b.timing_split(batch)
        assert s is not None and s["n"] == 200
        assert s["h2d_ms"] > 0 and s["compute_ms"] > 0 and s["d2h_ms"] > 0
        assert s["h2d_ms"] + s["compute_ms"] + s["d2h_ms"] <= s["end_to_end_ms"] * 1.05
    b.close()
