"""Transfer learning: copy torchvision VGG16-BN ImageNet conv/BN weights from a LOCAL file (never downloaded).

torchvision's `vgg16_bn().features` has the same module indices as VGG16FER.features
(Conv2d, BatchNorm2d, ReLU per conv; MaxPool2d after each block), so keys `features.N.*` map one to one.
The head (`classifier.*`) is not copied: ImageNet's 25088 -> 4096 -> 1000 head does not fit 48x48 input.
"""

from __future__ import annotations

from pathlib import Path

import torch

from common.errors import UserError
from fer.checkpoint import safe_torch_load
from fer.model import VGG16FER


def load_torchvision_vgg16_bn(model: VGG16FER, path: str | Path) -> int:
    """Copy every `features.*` tensor of the state_dict at `path` into `model`; returns how many were copied.

    The model must be the dense 3-channel VGG16-FER (model.in_channels = 3, width 1.0).
    """
    p = Path(path)
    obj = safe_torch_load(p, "pretrained weights")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise UserError(f"pretrained weights {p}: expected a torchvision VGG16-BN state_dict, got {type(obj).__name__}")
    src = {k: v for k, v in obj.items() if isinstance(k, str) and k.startswith("features.")}
    target = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
    if not src:
        raise UserError(f"pretrained weights {p}: no 'features.*' tensors; expected a torchvision VGG16-BN state_dict")
    missing = sorted(set(target) - set(src), key=_natural)
    if missing:
        raise UserError(
            f"pretrained weights {p}: not a VGG16-BN state_dict (lacks {len(missing)} tensors, first: {missing[0]})"
        )
    for k, ref in target.items():
        t = src[k]
        if not isinstance(t, torch.Tensor) or t.shape != ref.shape:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            hint = " (the model needs model.in_channels = 3 and width 1.0)" if k == "features.0.weight" else ""
            raise UserError(f"pretrained weights {p}: {k} is {shape}, the model needs {tuple(ref.shape)}{hint}")
    with torch.no_grad():
        for k, ref in target.items():
            ref.copy_(src[k].to(ref.dtype))
    return len(target)


def _natural(key: str) -> tuple[object, ...]:
    return tuple(int(part) if part.isdigit() else part for part in key.split("."))
