"""Per-layer accuracy sensitivity of a trained dense model: how much its validation loss rises when ONE conv keeps
only its w highest-L1 filters (or is removed), every other layer left dense. It is the value the latency plan
(compression/allocate.py) spends its budget on.

Why not summed filter norms (HALP's importance with Torch-Pruning's layer-mean normaliser): normalised that way,
every layer's channels are worth about the same, so a knapsack under a latency budget cuts first the layers whose
channels cost the most, the high-resolution early convs, down to 8 channels. Measured at `make sweep`'s width on a
Zen 3: 72.5% test accuracy against the dense model's 92.4% after the sweep's fine-tuning. Norms do not see that an
8-channel bottleneck starves every later layer. The loss does: this is the sensitivity analysis of NetAdapt's and
Distiller's per-layer pruning (measure each layer's damage on held-out images, then allocate), with the damages
summed over layers, which ranks plans by what they cost the network rather than by what they remove.

How it is measured, cheaply: zeroing a channel's post-ReLU output is exactly removing that filter (the next conv
reads zeros; the kept channels' BN statistics are untouched), and removing a conv whose input width equals its
output width is exactly passing its input on (depth.remove_convs). So every variant is one masked forward pass of
the dense model over the same images: paired with the dense pass, the loss difference is free of the images'
sampling noise. Per layer, a few widths are measured (the channel group, 1/8, 1/4, 1/2 and 3/4 of the layer,
snapped to the group) and the rest interpolated linearly; the curve is made non-increasing in width (keeping more
filters never costs more) and clamped at 0 (a pruned layer that lowers the loss did so by chance on these images).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fer.model import VGG16FER

FRACTIONS = (0.125, 0.25, 0.5, 0.75)


@dataclass(frozen=True)
class LayerSensitivity:
    """One conv's loss increase: `widths[i]` kept filters -> `delta[i]` (nats per image), and removed -> `removed`
    (None where the conv cannot become the identity: its input width differs from its output width)."""

    name: str
    dense: int
    widths: list[int]
    delta: list[float]
    removed: float | None

    def curve(self) -> np.ndarray:
        """The loss increase at every width 0..dense (index = kept filters): linear between the measured widths,
        non-increasing, >= 0, 0 at the dense width; width 0 (nothing kept) repeats the smallest measured width."""
        xs = [*self.widths, self.dense]
        ys = [*self.delta, 0.0]
        out = np.interp(np.arange(self.dense + 1), xs, ys)
        out = np.maximum.accumulate(np.clip(out, 0.0, None)[::-1])[::-1]
        return np.asarray(out, dtype=np.float64)


def measured_widths(dense: int, group: int) -> list[int]:
    """The widths below `dense` whose loss is measured: the group and FRACTIONS of the layer, multiples of group."""
    ws = {group} | {max(group, round(f * dense / group) * group) for f in FRACTIONS}
    return sorted(w for w in ws if w < dense)


def _blocks(model: VGG16FER) -> list[tuple[nn.Module, ...]]:
    """model.features as blocks: (Conv2d, BatchNorm2d, ReLU) per conv, (MaxPool2d,) per pool."""
    mods, out, i = list(model.features), [], 0
    while i < len(mods):
        if isinstance(mods[i], nn.Conv2d):
            out.append(tuple(mods[i : i + 3]))
            i += 3
        else:
            out.append((mods[i],))
            i += 1
    return out


def _run(blocks: list[tuple[nn.Module, ...]], x: torch.Tensor) -> torch.Tensor:
    for block in blocks:
        for m in block:
            x = m(x)
    return x


def _batches(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [x[i : i + size] for i in range(0, len(x), size)]


def _bns(blocks: list[tuple[nn.Module, ...]]) -> list[nn.BatchNorm2d]:
    return [m for b in blocks for m in b if isinstance(m, nn.BatchNorm2d)]


class _Scorer:
    """The summed cross-entropy of the rest of the network from one activation, with (EagleEye's adaptive BN)
    the BNs of the rest re-estimated first on the calibration images' same activation, then restored."""

    def __init__(self, model: VGG16FER, y: torch.Tensor, batch_size: int) -> None:
        self.model, self.y, self.batch_size = model, y, batch_size

    def loss(self, rest: list[tuple[nn.Module, ...]], h_val: torch.Tensor, h_cal: torch.Tensor | None) -> float:
        bns = _bns(rest) if h_cal is not None else []
        saved = [({k: v.clone() for k, v in bn.state_dict().items()}, bn.momentum) for bn in bns]
        try:
            if h_cal is not None and bns:
                for bn in bns:  # a cumulative average over the calibration batches, then evaluation
                    bn.reset_running_stats()
                    bn.momentum = None
                    bn.train()
                for hb in _batches(h_cal, self.batch_size):
                    _run(rest, hb)
                for bn in bns:
                    bn.eval()
            total, at = 0.0, 0
            for hb in _batches(h_val, self.batch_size):
                logits = _head(self.model, _run(rest, hb))
                total += float(F.cross_entropy(logits, self.y[at : at + len(hb)], reduction="sum"))
                at += len(hb)
            return total
        finally:
            for bn, (state, momentum) in zip(bns, saved, strict=True):
                bn.load_state_dict(state)
                bn.momentum = momentum
                bn.eval()


@torch.inference_mode()
def layer_sensitivity(model: VGG16FER, images: np.ndarray, labels: np.ndarray, group: int,
                      calibration: np.ndarray | None = None, batch_size: int = 128) -> list[LayerSensitivity]:
    """Per conv of `model` (in order), its loss increase on `images` (float [N, C, 48, 48]) / `labels` at
    `measured_widths` and when removed. With `calibration` images (training images, float), every variant's
    later BNs are first re-estimated on them (adaptive BN, Li et al., EagleEye, ECCV 2020: the pruned network's
    loss after BN re-estimation ranks candidates as their fine-tuned accuracy does, where the raw loss of a narrow
    layer is dominated by stale statistics and saturates). The dense loss is measured the same way, so the
    differences stay paired. `model` is left unchanged (eval mode during the passes)."""
    if len(images) == 0:
        raise ValueError("no images to measure layer sensitivity on")
    was_training = model.training
    model.eval()
    blocks = _blocks(model)
    conv_at = [i for i, b in enumerate(blocks) if isinstance(b[0], nn.Conv2d)]
    convs = [m for i in conv_at if isinstance(m := blocks[i][0], nn.Conv2d)]
    widths = [measured_widths(int(c.out_channels), group) for c in convs]
    orders = [torch.argsort(c.weight.detach().abs().flatten(1).sum(1), descending=True) for c in convs]
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    scorer = _Scorer(model, y, batch_size)
    h_val = torch.from_numpy(np.ascontiguousarray(images))
    h_cal = None if calibration is None else torch.from_numpy(np.ascontiguousarray(calibration))
    n = len(y)
    out: list[LayerSensitivity] = []
    try:
        base = scorer.loss(blocks, h_val, h_cal)
        prev = -1
        for k, bi in enumerate(conv_at):
            h_val = _run(blocks[prev + 1 : bi], h_val)  # the pools since the previous conv
            h_cal = None if h_cal is None else _run(blocks[prev + 1 : bi], h_cal)
            o_val = _run([blocks[bi]], h_val)
            o_cal = None if h_cal is None else _run([blocks[bi]], h_cal)
            rest, prev = blocks[bi + 1 :], bi
            delta = []
            for w in widths[k]:
                mask = torch.zeros(1, o_val.shape[1], 1, 1, dtype=o_val.dtype)
                mask[0, orders[k][:w]] = 1.0
                cal = None if o_cal is None else o_cal * mask
                delta.append((scorer.loss(rest, o_val * mask, cal) - base) / n)
            removed = None
            if h_val.shape[1] == o_val.shape[1]:
                removed = (scorer.loss(rest, h_val, h_cal) - base) / n
            name = f"features.{sum(len(b) for b in blocks[:bi])}"
            out.append(LayerSensitivity(name, int(convs[k].out_channels), widths[k], delta, removed))
            h_val, h_cal = o_val, o_cal
    finally:
        model.train(was_training)
    return out


def _head(model: VGG16FER, feats: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = model.classifier(torch.flatten(feats, 1))
    return out
