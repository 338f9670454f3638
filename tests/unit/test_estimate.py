"""Time said up front: the probe measures the rate training really runs at, the estimate counts the images the
run will really process, and `bench train` on a pipe says the estimate before training and the phase times after."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from common.config import TrainConfig, load_config
from fer.data import FerData, Split
from fer.model import build_model, default_arch
from fer.train import fit, probe_images_per_s
from harness.cli import main
from harness.orchestrate.estimate import INFER, compress_cost, estimate, train_cost, train_images

pytestmark = pytest.mark.usefixtures("two_threads")


def _data(n_train: int = 700, n_val: int = 70, n_test: int = 140) -> FerData:
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        return Split(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.arange(n, dtype=np.int64) % 7)

    return FerData("random", split(n_train), split(n_val), split(n_test), synthetic=True)


def test_training_images_follow_the_budget() -> None:
    data = _data()
    full = load_config(None, ["train.epochs=2", "train.batch_size=32"])
    assert train_images(full, data) == 2 * (700 // 32) * 32  # whole passes over the data
    budget = load_config(None, ["train.epochs=3", "train.batch_size=32", "train.images_per_epoch=320"])
    assert train_images(budget, data) == 3 * 320
    assert train_cost(budget, data) == pytest.approx(960 + INFER * (3 * 70 + 70 + 140))


def test_compression_cost_counts_each_pruned_model_once_and_scales_with_sparsity() -> None:
    data = _data()
    cfg = load_config(None, ["train.batch_size=32", "train.images_per_epoch=320", "compress.finetune_epochs=2",
                             "compress.qat_epochs=1"])
    both = compress_cost(cfg, data, ["l1-fp32", "l1-int8"])
    int8_only = compress_cost(cfg, data, ["l1-int8"])
    fp32_only = compress_cost(cfg, data, ["l1-fp32"])
    assert both < int8_only + fp32_only  # the fine-tuning of l1's pruned model is paid once
    sparser = dataclasses.replace(cfg, compress=dataclasses.replace(cfg.compress, sparsity=0.75))
    assert compress_cost(sparser, data, ["l1-fp32"]) < fp32_only
    est = estimate(cfg, data, rate=10.0, variants=["l1-fp32"])
    assert est.compress_s == pytest.approx(fp32_only / 10.0)
    assert est.line(True, ["l1-fp32"]).startswith("estimate for this machine: training: ~")
    assert "at ~10 img/s; compression (1 variants): ~" in est.line(True, ["l1-fp32"])


def test_probe_measures_the_rate_fit_trains_at() -> None:
    data = _data(n_train=96)
    cfg = dataclasses.replace(TrainConfig(), epochs=2, batch_size=32, bf16=False, seed=0, device="cpu")
    torch.manual_seed(0)
    model = build_model(default_arch(width=0.25))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probed = probe_images_per_s(model, cfg, seconds=0.5)
    for k, v in model.state_dict().items():  # the probe trains a copy
        assert torch.equal(v, before[k]), k
    hist = fit(model, data.train, None, cfg)
    trained = max(e.images_per_s for e in hist.epochs)
    assert trained / 3 < probed < trained * 3, (probed, [e.images_per_s for e in hist.epochs])


def test_bench_train_on_a_pipe_says_the_estimate_first_and_the_phase_times_last(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sets = ["model.width=0.0625", "data.synthfer_train=140", "data.synthfer_val=70", "data.synthfer_test=70",
            "train.epochs=2", "train.bf16=false", f"store.cache_dir={tmp_path / 'cache'}"]
    argv = ["train"] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    first = next(i for i, ln in enumerate(lines) if ln.startswith("estimate for this machine: training: ~"))
    trained = next(i for i, ln in enumerate(lines) if ln.startswith("train dense VGG16-FER x") and ": done" in ln)
    assert first < trained, lines
    assert " img/s" in lines[first]
    assert lines[-1].startswith("time per phase: data ") and ", training " in lines[-1], lines
    assert "\r" not in err
