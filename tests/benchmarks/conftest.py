"""Artifacts for the pytest-benchmark suite: real ones from FER_BENCH_ARTIFACTS (a folder of variant
directories, e.g. .bench-cache/artifacts/<key>), else tiny ones built with compression.variants."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from backends.artifact import MANIFEST
from fer.data import FerData, Split
from fer.model import build_model, default_arch


def _tiny_data(n: int = 70) -> FerData:
    rng = np.random.default_rng(0)

    def split() -> Split:
        return Split(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.arange(n, dtype=np.int64) % 7)

    return FerData("tiny-random", split(), split(), split(), synthetic=True)


def _tiny_artifacts(root: Path) -> dict[str, Path]:
    from common.config import load_config
    from compression.variants import build_variants

    cfg = load_config(None, ["model.width=0.125", "compress.finetune_epochs=0", "compress.qat_epochs=0",
                             "compress.calibration_size=32", "train.batch_size=32", "train.bf16=false"])
    torch.manual_seed(0)
    dense = build_model(default_arch(width=0.125)).eval()
    return dict(build_variants(cfg, _tiny_data(), dense, root, ["dense-fp32", "l1-fp32", "dense-int8", "l1-int8"]))


def bench_artifacts(tmp_root: Path) -> dict[str, Path]:
    given = os.environ.get("FER_BENCH_ARTIFACTS")
    if given:
        return {p.name: p for p in sorted(Path(given).iterdir()) if (p / MANIFEST).is_file()}
    return _tiny_artifacts(tmp_root)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return bench_artifacts(tmp_path_factory.mktemp("bench-artifacts"))
