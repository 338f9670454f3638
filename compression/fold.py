"""Batch-norm folding: Conv2d + BatchNorm2d (eval statistics) -> one Conv2d with bias.

w' = w * gamma / sqrt(var + eps)  (per output channel);  b' = (b - mean) * gamma / sqrt(var + eps) + beta.
`folded_layers(model)` returns the VGG16-FER compute layers in order, with their *original* module names
(`features.<i>` of the conv, `classifier.0`, `classifier.3`) so that names stay stable across the
artifact (model.pt, ONNX node names, layer table).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fer.model import VGG16FER


@dataclass
class FoldedLayer:
    """One conv or linear layer after folding: weight, bias, and what follows it."""

    name: str  # original module name, e.g. "features.0", "classifier.3"
    kind: str  # "conv" | "linear"
    weight: torch.Tensor  # conv [C_out, C_in, 3, 3] / linear [out, in]
    bias: torch.Tensor  # [C_out]
    relu: bool  # a ReLU follows
    pool_after: bool  # a 2x2 max-pool follows the ReLU (conv only)


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of the conv with `bn`'s running statistics folded in."""
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if bn.running_mean is None or bn.running_var is None:  # BN in eval mode has statistics
        raise RuntimeError('internal: expected bn.running_mean is not None and bn.running_var is not None')
    std = torch.sqrt(bn.running_var.double() + bn.eps)
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(std)
    factor = gamma / std
    w_f = w * factor[:, None, None, None]
    b_f = (b - bn.running_mean.double()) * factor + beta
    return w_f.float(), b_f.float()


def folded_layers(model: VGG16FER) -> list[FoldedLayer]:
    """The model's conv (BN folded) and linear layers in execution order."""
    out: list[FoldedLayer] = []
    mods = list(model.features)
    i = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, nn.Conv2d):
            bn = mods[i + 1]
            if not isinstance(bn, nn.BatchNorm2d):
                raise TypeError(f"features.{i + 1} is {type(bn).__name__}, expected BatchNorm2d")
            w, b = fold_conv_bn(m, bn)
            pool = i + 3 < len(mods) and isinstance(mods[i + 3], nn.MaxPool2d)
            out.append(FoldedLayer(f"features.{i}", "conv", w, b, relu=True, pool_after=pool))
            i += 3
        else:
            i += 1
    fc0, fc3 = model.classifier[0], model.classifier[3]
    if not (isinstance(fc0, nn.Linear) and isinstance(fc3, nn.Linear)):
        raise RuntimeError('internal: expected isinstance(fc0, nn.Linear) and isinstance(fc3, nn.Linear)')
    out.append(FoldedLayer("classifier.0", "linear", fc0.weight.detach().clone(), fc0.bias.detach().clone(),
                           relu=True, pool_after=False))
    out.append(FoldedLayer("classifier.3", "linear", fc3.weight.detach().clone(), fc3.bias.detach().clone(),
                           relu=False, pool_after=False))
    return out


class FoldedVGG(nn.Module):
    """VGG16-FER without BN: conv(+bias) -> ReLU [-> max-pool] ... flatten -> fc -> ReLU -> dropout -> fc.

    Module names mirror the original (`features.<i>`, `classifier.0`, `classifier.3`) via a ModuleDict.
    """

    def __init__(self, layers: list[FoldedLayer], dropout: float = 0.5) -> None:
        super().__init__()
        self.names = [fl.name for fl in layers]
        self.relu_after = [fl.relu for fl in layers]
        self.pool_after = [fl.pool_after for fl in layers]
        self.layers = nn.ModuleDict()
        for fl in layers:
            mod: nn.Conv2d | nn.Linear
            if fl.kind == "conv":
                c_out, c_in = fl.weight.shape[:2]
                mod = nn.Conv2d(int(c_in), int(c_out), 3, padding=1)
            else:
                mod = nn.Linear(int(fl.weight.shape[1]), int(fl.weight.shape[0]))
            with torch.no_grad():
                mod.weight.copy_(fl.weight)
                if mod.bias is None:
                    raise RuntimeError('internal: expected mod.bias is not None')
                mod.bias.copy_(fl.bias)
            self.layers[fl.name.replace(".", "_")] = mod
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name, relu, pool in zip(self.names, self.relu_after, self.pool_after, strict=True):
            mod = self.layers[name.replace(".", "_")]
            if isinstance(mod, nn.Linear) and x.dim() > 2:
                x = torch.flatten(x, 1)
            x = mod(x)
            if relu:
                x = torch.relu(x)
            if pool:
                x = nn.functional.max_pool2d(x, 2, 2)
            if name == "classifier.0":
                x = self.dropout(x)
        return x


def fold_model(model: VGG16FER) -> FoldedVGG:
    """A BN-free copy of `model` (eval statistics folded); outputs match within float rounding."""
    return FoldedVGG(folded_layers(model), float(model.arch["dropout"])).eval()
