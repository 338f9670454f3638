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


@torch.inference_mode()
def layer_sensitivity(model: VGG16FER, images: np.ndarray, labels: np.ndarray, group: int,
                      batch_size: int = 128) -> list[LayerSensitivity]:
    """Per conv of `model` (in order), its loss increase on `images` (float [N, C, 48, 48]) / `labels` at
    `measured_widths` and when removed. `model` is left unchanged (eval mode during the passes)."""
    was_training = model.training
    model.eval()
    blocks = _blocks(model)
    conv_at = [i for i, b in enumerate(blocks) if isinstance(b[0], nn.Conv2d)]
    convs = [m for i in conv_at if isinstance(m := blocks[i][0], nn.Conv2d)]
    widths = [measured_widths(int(c.out_channels), group) for c in convs]
    sums = [np.zeros(len(w) + 1) for w in widths]  # per width, then removal
    orders = [torch.argsort(c.weight.detach().abs().flatten(1).sum(1), descending=True) for c in convs]
    n = 0
    try:
        for s in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[s : s + batch_size]))
            y = torch.from_numpy(np.asarray(labels[s : s + batch_size], dtype=np.int64))
            base = float(F.cross_entropy(_head(model, _run(blocks, x)), y, reduction="sum"))
            h, prev = x, -1
            for k, bi in enumerate(conv_at):
                h = _run(blocks[prev + 1 : bi], h)  # the pools since the previous conv
                out, prev = _run([blocks[bi]], h), bi
                rest = blocks[bi + 1 :]
                for j, w in enumerate(widths[k]):
                    mask = torch.zeros(out.shape[1], dtype=out.dtype)
                    mask[orders[k][:w]] = 1.0
                    logits = _head(model, _run(rest, out * mask.view(1, -1, 1, 1)))
                    sums[k][j] += float(F.cross_entropy(logits, y, reduction="sum")) - base
                if h.shape[1] == out.shape[1]:
                    sums[k][-1] += float(F.cross_entropy(_head(model, _run(rest, h)), y, reduction="sum")) - base
                else:
                    sums[k][-1] = np.nan
                h = out
            n += len(y)
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("no images to measure layer sensitivity on")
    names = [f"features.{sum(len(b) for b in blocks[:i])}" for i in conv_at]
    return [LayerSensitivity(name, int(c.out_channels), w, [float(v) / n for v in s[:-1]],
                             None if np.isnan(s[-1]) else float(s[-1]) / n)
            for name, c, w, s in zip(names, convs, widths, sums, strict=True)]


def _head(model: VGG16FER, feats: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = model.classifier(torch.flatten(feats, 1))
    return out
