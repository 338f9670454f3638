"""Real artifacts for the backend/harness tests: a tiny (width 0.125) VGG16-FER.

`artifacts` comes from `compression.variants.build_variants` (dense/l1 x fp32/int8, no training epochs); a
compression failure fails the tests that use it (no fallback: a broken INT8 path must not turn into skips).
`write_fp32_artifact` (torch.onnx.export dynamo=False, opset 17, dynamic batch, model.pt, manifest with sha256
of each file) serves tests that need an artifact with a particular shape (e.g. 3 input channels).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from backends.artifact import MANIFEST, ONNX_FILE, SCHEMA_VERSION, TORCH_FILE, sha256_file
from fer.data import FerData, Split
from fer.model import VGG16FER, arch_of, build_model, count_params, default_arch

WIDTH = 0.125


def _tiny_data(n_test: int = 70, seed: int = 0) -> FerData:
    rng = np.random.default_rng(seed)

    def split(n: int) -> Split:
        return Split(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.arange(n, dtype=np.int64) % 7)

    return FerData("tiny-random", split(70), split(70), split(n_test), synthetic=True)


def write_fp32_artifact(out_dir: Path, variant: str = "dense-fp32", width: float = WIDTH, seed: int = 0,
                        in_channels: int = 1) -> Path:
    """A complete fp32 artifact directory (written to a temp dir, then renamed)."""
    model = tiny_dense(width, seed, in_channels)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    torch.save({"arch": arch_of(model), "state_dict": model.state_dict(), "quant": None}, tmp / TORCH_FILE)
    x = torch.rand(1, in_channels, 48, 48)
    torch.onnx.export(model, (x,), str(tmp / ONNX_FILE), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    params, nonzero = count_params(model)
    storage = params * 4
    files = {n: {"bytes": (tmp / n).stat().st_size, "sha256": sha256_file(tmp / n)} for n in (TORCH_FILE, ONNX_FILE)}
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "variant": variant, "method": variant.rsplit("-", 1)[0],
        "method_label": "dense", "sparsity": 0.0, "precision": "fp32", "params": params,
        "nonzero_params": nonzero, "storage_bytes": storage, "storage_mb": storage / 1e6,
        "compression_ratio": 1.0, "gmac": _gmac(model, in_channels), "val_accuracy": 0.0, "test_accuracy": 0.0,
        "config_hash": "test", "dataset": "tiny-random", "synthetic": True, "files": files,
        "versions": {"torch": torch.__version__}, "input_shape": [in_channels, 48, 48],
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def _gmac(model: torch.nn.Module, in_channels: int) -> float:
    macs = 0
    hooks = []

    def conv_hook(m: torch.nn.Module, inp: Any, out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(m, torch.nn.Conv2d):
            macs += out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            macs += m.in_features * m.out_features

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            hooks.append(m.register_forward_hook(conv_hook))
    with torch.no_grad():
        model(torch.zeros(1, in_channels, 48, 48))
    for h in hooks:
        h.remove()
    return macs / 1e9


def tiny_dense(width: float = WIDTH, seed: int = 0, in_channels: int = 1) -> VGG16FER:
    """A random VGG16-FER with non-trivial BN statistics and logits of a realistic size."""
    torch.manual_seed(seed)
    model = build_model(default_arch(in_channels=in_channels, width=width)).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d) and m.running_mean is not None and m.running_var is not None:
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
            elif isinstance(m, torch.nn.Linear):
                torch.nn.init.kaiming_normal_(m.weight)
    return model


ALL_VARIANTS = ("dense-fp32", "l1-fp32", "dense-int8", "l1-int8")


def compression_variants(root: Path, data: FerData, names: tuple[str, ...] = ALL_VARIANTS) -> dict[str, Path]:
    """Tiny artifacts from compression.variants.build_variants (no fine-tuning/QAT epochs); errors propagate."""
    from common.config import load_config
    from compression.variants import build_variants

    cfg = load_config(None, [f"model.width={WIDTH}", "compress.finetune_epochs=0", "compress.qat_epochs=0",
                             "compress.calibration_size=32", "train.batch_size=32", "train.bf16=false"])
    torch.set_num_threads(1)
    return dict(build_variants(cfg, data, tiny_dense(), root, list(names)))


@pytest.fixture(scope="session")
def tiny_data() -> FerData:
    return _tiny_data()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory, tiny_data: FerData) -> dict[str, Path]:
    """{variant: artifact dir} for dense/l1 x fp32/int8, all from the real compression code."""
    root = tmp_path_factory.mktemp("artifacts")
    arts = compression_variants(root, tiny_data)
    missing = [v for v in ALL_VARIANTS if v not in arts]
    if missing:
        raise RuntimeError(f"build_variants did not produce {missing}")
    return arts


@pytest.fixture(scope="session")
def fp32_artifact(artifacts: dict[str, Path]) -> Path:
    return artifacts["dense-fp32"]


@pytest.fixture(scope="session")
def make_fp32_artifact() -> Any:
    """The `write_fp32_artifact` function, for tests that need an artifact of a particular shape."""
    return write_fp32_artifact
