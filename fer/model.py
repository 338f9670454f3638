"""VGG16-FER: VGG16 with batch norm on 1x48x48 faces and the paper's small head (512 -> 512 -> 7).

The architecture is described by a plain dict (`arch`) so that a pruned model (fewer channels per layer)
is rebuilt from its checkpoint without pickled code: `build_model(arch)` then `load_state_dict`.

arch = {
    "in_channels": 1,                      # 3 for ImageNet transfer learning
    "features": [64, 64, "M", 128, ...],   # conv output channels, "M" = 2x2 max-pool
    "hidden": 512,                         # width of the hidden FC layer
    "num_classes": 7,
    "dropout": 0.5,
    "removed": [4, 9],                     # optional: dense conv indices (1-12) a hardware-aware plan replaced by
}                                          # the identity; "features" then lists only the convs that remain
Module names are stable: `features.<i>` (Conv2d, BatchNorm2d, ReLU, MaxPool2d) and
`classifier.0` (Linear), `classifier.1` (ReLU), `classifier.2` (Dropout), `classifier.3` (Linear).
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from fer.classes import IMAGE_SIZE, NUM_CLASSES

VGG16_FEATURES: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)
Arch = dict[str, Any]
DENSE_CONVS = 13


def default_arch(in_channels: int = 1, width: float = 1.0, hidden: int = 512, dropout: float = 0.5) -> Arch:
    """The dense VGG16-FER description; `width` scales every layer (tests use small widths)."""
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    feats: list[int | str] = [c if c == "M" else max(1, round(int(c) * width)) for c in VGG16_FEATURES]
    return {
        "in_channels": in_channels,
        "features": feats,
        "hidden": max(1, round(hidden * width)),
        "num_classes": NUM_CLASSES,
        "dropout": dropout,
    }


class VGG16FER(nn.Module):
    """VGG16-BN feature extractor + FC head; input [N, C, 48, 48] in [0, 1], output logits [N, 7]."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.arch = _validated(arch)
        layers: list[nn.Module] = []
        c_in = int(self.arch["in_channels"])
        for item in self.arch["features"]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                c_out = int(item)
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        spatial = IMAGE_SIZE // (2 ** sum(1 for i in self.arch["features"] if i == "M"))
        hidden = int(self.arch["hidden"])
        self.classifier = nn.Sequential(
            nn.Linear(c_in * spatial * spatial, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(float(self.arch["dropout"])),
            nn.Linear(hidden, int(self.arch["num_classes"])),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        out: torch.Tensor = self.classifier(torch.flatten(x, 1))
        return out


def build_model(arch: Arch) -> VGG16FER:
    """A fresh (randomly initialised) model for `arch`."""
    return VGG16FER(arch)


def arch_of(model: nn.Module) -> Arch:
    """The description of a (possibly pruned) VGG16FER, read from its layers' real shapes."""
    if not isinstance(model, VGG16FER):
        raise TypeError(f"expected VGG16FER, got {type(model).__name__}")
    feats: list[int | str] = []
    in_ch = None
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            in_ch = m.in_channels if in_ch is None else in_ch
            feats.append(int(m.out_channels))
        elif isinstance(m, nn.MaxPool2d):
            feats.append("M")
    fc0, fc_out = model.classifier[0], model.classifier[3]
    if not (isinstance(fc0, nn.Linear) and isinstance(fc_out, nn.Linear)):
        raise TypeError("classifier.0 and classifier.3 must be Linear layers")
    out: Arch = {
        "in_channels": int(in_ch or model.arch["in_channels"]),
        "features": feats,
        "hidden": int(fc0.out_features),
        "num_classes": int(fc_out.out_features),
        "dropout": float(model.arch["dropout"]),
    }
    if model.arch.get("removed"):
        out["removed"] = list(model.arch["removed"])
    return out


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, non-zero parameters)."""
    total = sum(p.numel() for p in model.parameters())
    nonzero = sum(int(torch.count_nonzero(p).item()) for p in model.parameters())
    return total, nonzero


def _validated(arch: Arch) -> Arch:
    required = {"in_channels", "features", "hidden", "num_classes", "dropout"}
    missing = required - set(arch)
    if missing:
        raise ValueError(f"architecture description lacks {sorted(missing)}")
    feats = list(arch["features"])
    removed = arch.get("removed") or []
    if not isinstance(removed, list) or any(not isinstance(r, int) or not 0 < r < DENSE_CONVS for r in removed) \
            or len(set(removed)) != len(removed):
        raise ValueError(f"removed must list distinct dense conv indices in 1..{DENSE_CONVS - 1}, got {removed!r}")
    convs = sum(1 for f in feats if f != "M")
    if sum(1 for f in feats if f == "M") != 5 or convs + len(removed) != DENSE_CONVS:
        raise ValueError("architecture must have 13 conv layers (less those listed in removed) and 5 max-pools "
                         "(VGG16)")
    if any(f != "M" and (not isinstance(f, int) or f < 1) for f in feats):
        raise ValueError("conv channel counts must be positive integers")
    if feats[0] == "M" or any(a == b == "M" for a, b in itertools.pairwise(feats)):
        raise ValueError("every stage (between max-pools) must keep at least one conv layer")
    out = {**arch, "features": feats}
    if removed:
        out["removed"] = sorted(removed)
    else:
        out.pop("removed", None)
    return out
