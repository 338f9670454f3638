"""Time said up front: "training: ~7 min at ~15 img/s; compression ~3 min", from a probe measured here.

The probe (fer.train.probe_images_per_s: a few training steps of the dense model, a few seconds) gives this
machine's dense training rate r. Everything else is counted in images and converted with relative costs per
image, measured on a 2-core AMD EPYC (Zen 3, AVX2) as CPU seconds per image at 1 thread, robust to other load
(docs/results.md, "Where the time goes"): a pruned model at sparsity s costs ~(1 - s)^2 of the dense one (4.1x
faster at 0.5, measured 4.1x), QAT of the pruned model 1.2x its fine-tuning, a forward pass for evaluation ~0.3 of a
training step, a fake-quant forward ~1.5x the fp32 one. It is an estimate, printed as one ("~"), and the real
time per phase is printed at the end beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.config import Config
from common.console import about
from fer.data import FerData
from fer.train import epoch_steps

INFER = 0.3  # a forward pass (no grad, batch 256) per image, in dense training images
FAKE_QUANT = 1.5  # a fake-quant forward against an fp32 one
QAT = 1.2  # a QAT step against a fine-tuning step of the same pruned model
VERIFY_RUNTIMES = 2  # ONNX Runtime and OpenVINO run the val images of every variant (compression/checks.py)
RUNTIME_SPEED = 2.0  # their fp32 inference against PyTorch eager's


@dataclass(frozen=True)
class Estimate:
    rate: float  # dense training images/s measured here
    train_s: float
    compress_s: float

    def line(self, train: bool, variants: list[str]) -> str:
        parts = [f"training: {about(self.train_s)} at ~{self.rate:.0f} img/s"] if train else []
        if variants:
            parts.append(f"compression ({len(variants)} variants): {about(self.compress_s)}")
        tail = "" if train else f" (at ~{self.rate:.0f} img/s, measured)"
        return "estimate for this machine: " + "; ".join(parts) + tail


def train_images(cfg: Config, data: FerData) -> int:
    """Images seen by dense training (epochs x images per epoch, whole batches)."""
    bs = max(1, min(cfg.train.batch_size, len(data.train)))
    return cfg.train.epochs * epoch_steps(len(data.train), cfg.train) * bs


def train_cost(cfg: Config, data: FerData) -> float:
    """Dense training in dense-training images: the steps, val after each epoch, val + test at the end."""
    evals = cfg.train.epochs * len(data.val) + len(data.val) + len(data.test)
    return train_images(cfg, data) + INFER * evals


def compress_cost(cfg: Config, data: FerData, variants: list[str]) -> float:
    """Building `variants` in dense-training images (see the module docstring for the relative costs)."""
    c = cfg.compress
    bs = max(1, min(cfg.train.batch_size, len(data.train)))
    epoch = epoch_steps(len(data.train), cfg.train) * bs
    n_val, n_test = len(data.val), len(data.test)
    pruned = (1.0 - c.sparsity) ** 2
    methods = {v.rpartition("-")[0] for v in variants} - {"dense"}
    total = len(methods) * pruned * epoch * c.finetune_epochs  # each method's pruned model is fine-tuned once
    for name in variants:
        method, _, precision = name.rpartition("-")
        size = 1.0 if method == "dense" else pruned
        evals = INFER * size * (n_val + n_test)
        verify = VERIFY_RUNTIMES * INFER * size * min(n_val, 2000) / RUNTIME_SPEED
        if precision == "fp32":
            total += evals + verify
        else:
            qat = 0.0 if method == "dense" else QAT * size * epoch * c.qat_epochs
            calibrate = INFER * size * c.calibration_size
            total += qat + calibrate + FAKE_QUANT * evals + verify
    return total


def estimate(cfg: Config, data: FerData, rate: float, variants: list[str]) -> Estimate:
    """Seconds of dense training and of building `variants` at `rate` dense training images/s."""
    r = max(rate, 1e-9)
    return Estimate(rate, train_cost(cfg, data) / r, compress_cost(cfg, data, variants) / r)
