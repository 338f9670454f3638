"""Per-layer shapes, parameter counts, storage bytes at a precision, and MACs, from an `arch` dict.

Storage = the bytes of every stored parameter at its stored precision:
  fp32 (model.pt keeps BN): conv weight + bias + BN gamma, beta, running mean, running var; linear weight
        + bias; 4 bytes each.
  int8 (BN folded): int8 weights (1 byte) + int32 bias (4 bytes, as in the ONNX file) + fp32 per-channel
        weight scale (4 bytes) + one fp32 activation scale per layer; asymmetric adds int8 weight
        zero-points (1 byte per channel) and one uint8 activation zero-point.
"""

from __future__ import annotations

from dataclasses import dataclass

from fer.classes import IMAGE_SIZE
from fer.model import Arch


@dataclass(frozen=True)
class LayerInfo:
    name: str  # "features.<i>" or "classifier.0" / "classifier.3"
    kind: str  # "conv" | "linear"
    in_channels: int
    out_channels: int
    out_size: str  # "48x48" for a conv (before any pool), "512" for a linear
    weights: int
    biases: int
    macs: int  # multiply-accumulates per image

    @property
    def params(self) -> int:
        """Parameters of the BN-folded layer (weights + biases)."""
        return self.weights + self.biases


def layer_infos(arch: Arch) -> list[LayerInfo]:
    """Every conv and linear layer of a VGG16-FER `arch`, in order, with its original module name."""
    out: list[LayerInfo] = []
    c_in, hw, idx = int(arch["in_channels"]), IMAGE_SIZE, 0
    for item in arch["features"]:
        if item == "M":
            hw //= 2
            idx += 1
            continue
        c_out = int(item)
        w = c_in * c_out * 9
        out.append(LayerInfo(f"features.{idx}", "conv", c_in, c_out, f"{hw}x{hw}", w, c_out, w * hw * hw))
        c_in, idx = c_out, idx + 3
    flat = c_in * hw * hw
    hidden, classes = int(arch["hidden"]), int(arch["num_classes"])
    out.append(LayerInfo("classifier.0", "linear", flat, hidden, str(hidden), flat * hidden, hidden, flat * hidden))
    out.append(LayerInfo("classifier.3", "linear", hidden, classes, str(classes), hidden * classes, classes,
                         hidden * classes))
    return out


def layer_storage_bytes(info: LayerInfo, precision: str, symmetric: bool = True) -> int:
    """Stored bytes of one layer at `precision` ("fp32" with BN, "int8" folded)."""
    if precision == "fp32":
        bn = 4 * info.out_channels if info.kind == "conv" else 0
        return 4 * (info.weights + info.biases + bn)
    if precision == "int8":
        b = info.weights + 4 * info.biases + 4 * info.out_channels + 4
        return b if symmetric else b + info.out_channels + 1
    raise ValueError(f"unknown precision {precision!r}")


def storage_bytes(arch: Arch, precision: str, symmetric: bool = True) -> int:
    """Stored bytes of the whole model at `precision`."""
    return sum(layer_storage_bytes(li, precision, symmetric) for li in layer_infos(arch))


def gmac(arch: Arch) -> float:
    """Multiply-accumulates per image, in G (convs and linears)."""
    return sum(li.macs for li in layer_infos(arch)) / 1e9
