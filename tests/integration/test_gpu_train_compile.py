"""CUDA training and torch-compile on CUDA: run where an NVIDIA GPU exists, skip with the reason elsewhere."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from backends.artifact import load_artifact
from backends.base import BackendOptions
from backends.registry import get_backend_class
from common.config import TrainConfig
from fer.data import Split
from fer.model import build_model, default_arch
from fer.train import fit

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no NVIDIA GPU/CUDA (torch.cuda.is_available() is False)")


def _split(n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    return Split(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.arange(n, dtype=np.int64) % 7)


def _train(device: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(default_arch(width=0.125))
    cfg = dataclasses.replace(TrainConfig(), epochs=2, batch_size=16, device=device, seed=3)
    fit(model, _split(96, 0), _split(21, 1), cfg)
    return model.state_dict()


@pytest.mark.gpu
@needs_cuda
def test_cuda_training_is_reproducible_and_saves_cpu_tensors() -> None:
    a, b = _train("cuda"), _train("cuda")
    assert all(v.device.type == "cpu" for v in a.values())  # checkpoints never depend on the device
    for k in a:
        assert torch.equal(a[k], b[k]), k  # same seeds, same GPU -> the same model


@pytest.mark.gpu
@needs_cuda
def test_torch_compile_on_cuda_agrees_with_eager(tmp_path: Path, make_fp32_artifact: Any) -> None:
    path = make_fp32_artifact(tmp_path / "dense-fp32")
    x = np.random.default_rng(0).random((4, 1, 48, 48), dtype=np.float32)
    outs = {}
    for name in ("torch-compile", "torch-eager"):
        b = get_backend_class(name)()
        b.load(load_artifact(path), BackendOptions(threads=2, batch_sizes=(1, 4), extra={"device": "cuda"}))
        outs[name] = (b.infer(x[:1]), b.infer(x), b.describe())
        b.close()
    d = outs["torch-compile"][2]
    assert d["device"].startswith("cuda:") and d["mode"] == {"1": "reduce-overhead", "4": "max-autotune"}
    assert d["recompiles"] == 0
    scale = float(np.abs(outs["torch-eager"][1]).max())
    np.testing.assert_allclose(outs["torch-compile"][1], outs["torch-eager"][1], atol=2e-3 * scale)
