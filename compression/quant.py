"""INT8 fake quantization (LSQ-style learnable scales), PTQ calibration and QAT on the BN-folded model.

Scheme (the default, legal for TensorRT): weights per output channel, symmetric, `weight_bits` wide (default
7: [-63, 63], scale = max|w| / 63 at start; 8: [-127, 127]) and stored as int8; activations per tensor with
zero-point 0 over one clipping range [0, alpha] per quantized tensor (every Conv/Gemm input is non-negative:
the image in [0, 1] or a post-ReLU / post-max-pool tensor). The PyTorch model and the CPU ONNX file quantize
activations on the uint8 grid (scale alpha / 255); the TensorRT file encodes the same alpha as int8 (scale
alpha / 127). The input image uses alpha = 1 (scale 1/255 = the pixel grid: lossless) and is not learned.

Why 7-bit weights: x86 CPUs without VNNI (AVX2 only) multiply u8 activations by s8 weights with
`vpmaddubsw`, which adds each pair of products in int16 with saturation; 255 * 127 * 2 = 64770 overflows
32767, so full-range int8 files compute something else than their reference (ONNX Runtime, OpenVINO and
torch's fbgemm all do this). With |w| <= 64, 255 * 64 * 2 = 32640 fits: no pair can saturate on any CPU.

`symmetric=False` gives the paper's asymmetric Eqs. 10-11 (scale = (max - min) / (2^b - 1), zero-point =
round(qmin - min / scale), weights in [-2^(b-1), 2^(b-1) - 1]: [-64, 63] at 7 bits): weights with a
per-channel zero-point, uint8 activations with one; ONNX Runtime and OpenVINO accept it, TensorRT does not (it
requires zero-point 0), so such a variant has no `model.trt.onnx`.

Scales are parameterised as log(scale) so that Adam's roughly-constant step size is a relative change;
the gradient reaching the scale is LSQ's (Esser et al. 2020): round(x/s) - x/s inside the range and the
clip level outside it, through a straight-through estimator for round().
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compression.fold import FoldedLayer, FoldedVGG

WEIGHT_BITS = (7, 8)  # 7: no int16 pair-sum saturation without VNNI (the default); 8: full int8
DEFAULT_WEIGHT_BITS = 7
A_QMAX = 255  # uint8 activations
CALIBRATIONS = ("minmax", "percentile", "entropy")
PERCENTILE = 99.99
MAX_SAMPLES_PER_BATCH = 200_000


def weight_range(bits: int = DEFAULT_WEIGHT_BITS, symmetric: bool = True) -> tuple[int, int]:
    """(qmin, qmax) of the stored weight integers: symmetric [-(2^(b-1) - 1), 2^(b-1) - 1], else [-2^(b-1), ...]."""
    if bits not in WEIGHT_BITS:
        raise ValueError(f"weight_bits = {bits}: allowed values are {', '.join(map(str, WEIGHT_BITS))}")
    qmax = 2 ** (bits - 1) - 1
    return (-qmax if symmetric else -qmax - 1), qmax


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return (x.round() - x).detach() + x


def fake_quant(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """dequant(quant(x)) = (clamp(round(x / s) + zp, qmin, qmax) - zp) * s, with LSQ gradients."""
    return (torch.clamp(_round_ste(x / scale) + zero_point, qmin, qmax) - zero_point) * scale


class ActQuant(nn.Module):
    """Per-tensor activation fake-quant on the uint8 grid; learnable scale unless `learn=False`."""

    zero_point: torch.Tensor

    def __init__(self, alpha: float = 1.0, learn: bool = True, low: float = 0.0, symmetric: bool = True) -> None:
        super().__init__()
        lo = 0.0 if symmetric else min(low, 0.0)
        scale = max(alpha - lo, 1e-8) / A_QMAX
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)), requires_grad=learn)
        zp = 0 if symmetric else round(-lo / scale)
        self.register_buffer("zero_point", torch.tensor(float(min(max(zp, 0), A_QMAX))))

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fake_quant(x, self.scale, self.zero_point, 0, A_QMAX)


class WeightQuant(nn.Module):
    """Per-output-channel weight fake-quant on the `bits`-wide grid (stored as int8); learnable scales
    initialised from the weight range."""

    zero_point: torch.Tensor

    def __init__(self, weight: torch.Tensor, symmetric: bool = True, bits: int = DEFAULT_WEIGHT_BITS) -> None:
        super().__init__()
        flat = weight.detach().flatten(1)
        self.symmetric = symmetric
        self.bits = bits
        self.qmin, self.qmax = weight_range(bits, symmetric)
        if symmetric:
            scale = flat.abs().max(1).values.clamp_min(1e-8) / self.qmax
            zp = torch.zeros_like(scale)
        else:  # paper Eqs. 10-11 on [qmin, qmax]
            lo = flat.min(1).values.clamp(max=0.0)
            hi = flat.max(1).values.clamp(min=0.0)
            scale = (hi - lo).clamp_min(1e-8) / float(self.qmax - self.qmin)
            zp = torch.clamp(torch.round(self.qmin - lo / scale), self.qmin, self.qmax)
        self.log_scale = nn.Parameter(scale.log())
        self.register_buffer("zero_point", zp)

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (w.dim() - 1)
        return fake_quant(w, self.scale.view(shape), self.zero_point.view(shape), self.qmin, self.qmax)

    def quantize(self, w: torch.Tensor) -> torch.Tensor:
        """The stored weights: int8 tensor with values in [qmin, qmax]."""
        shape = (-1,) + (1,) * (w.dim() - 1)
        q = torch.round(w / self.scale.view(shape)) + self.zero_point.view(shape)
        return torch.clamp(q, self.qmin, self.qmax).to(torch.int8)


class QuantLayer(nn.Module):
    """Conv (3x3, pad 1) or linear with fake-quantized input and weights; optional fixed weight mask."""

    mask: torch.Tensor | None

    def __init__(self, fl: FoldedLayer, alpha: float, learn_act: bool = True, symmetric: bool = True,
                 mask: torch.Tensor | None = None, weight_bits: int = DEFAULT_WEIGHT_BITS) -> None:
        super().__init__()
        self.kind = fl.kind
        self.weight = nn.Parameter(fl.weight.detach().clone())
        self.bias = nn.Parameter(fl.bias.detach().clone())
        self.act = ActQuant(alpha, learn=learn_act, symmetric=symmetric)
        self.wq = WeightQuant(self.weight, symmetric=symmetric, bits=weight_bits)
        self.register_buffer("mask", mask.to(self.weight.dtype) if mask is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight if self.mask is None else self.weight * self.mask
        x = self.act(x)
        wq = self.wq(w)
        if self.kind == "conv":
            return F.conv2d(x, wq, self.bias, padding=1)
        return F.linear(x, wq, self.bias)


class QuantVGG(nn.Module):
    """The BN-folded VGG16-FER with every Conv/Gemm input and weight fake-quantized (the int8 model)."""

    def __init__(self, layers: list[FoldedLayer], alphas: dict[str, float], dropout: float = 0.5,
                 symmetric: bool = True, masks: dict[str, torch.Tensor] | None = None,
                 weight_bits: int = DEFAULT_WEIGHT_BITS) -> None:
        super().__init__()
        self.names = [fl.name for fl in layers]
        self.relu_after = [fl.relu for fl in layers]
        self.pool_after = [fl.pool_after for fl in layers]
        self.symmetric = symmetric
        self.weight_bits = weight_bits
        self.layers = nn.ModuleDict()
        for i, fl in enumerate(layers):
            self.layers[_key(fl.name)] = QuantLayer(fl, alphas[fl.name], learn_act=i > 0, symmetric=symmetric,
                                                    mask=(masks or {}).get(fl.name), weight_bits=weight_bits)
        self.dropout = nn.Dropout(dropout)

    def layer(self, name: str) -> QuantLayer:
        mod = self.layers[_key(name)]
        if not isinstance(mod, QuantLayer):
            raise RuntimeError('internal: expected isinstance(mod, QuantLayer)')
        return mod

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name, relu, pool in zip(self.names, self.relu_after, self.pool_after, strict=True):
            mod = self.layers[_key(name)]
            if mod.kind == "linear" and x.dim() > 2:
                x = torch.flatten(x, 1)
            x = mod(x)
            if relu:
                x = torch.relu(x)
            if pool:
                x = F.max_pool2d(x, 2, 2)
            if name == "classifier.0":
                x = self.dropout(x)
        return x


def _key(name: str) -> str:
    return name.replace(".", "_")


# ---------------------------------------------------------------- calibration (PTQ)

@torch.no_grad()
def collect_inputs(model: FoldedVGG, images: torch.Tensor, batch_size: int = 64,
                   seed: int = 0, device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
    """A bounded random sample of the values entering every Conv/Gemm (for calibration), the forward passes
    on `device`; the model is left on the CPU and the sample is the same on every device (CPU generator)."""
    gen = torch.Generator().manual_seed(seed)
    samples: dict[str, list[np.ndarray]] = {n: [] for n in model.names}
    handles = []
    for name in model.names:
        def pre(_m: nn.Module, inp: tuple[torch.Tensor, ...], key: str = name) -> None:
            v = inp[0].detach().flatten().cpu()
            if v.numel() > MAX_SAMPLES_PER_BATCH:
                v = v[torch.randint(0, v.numel(), (MAX_SAMPLES_PER_BATCH,), generator=gen)]
            samples[key].append(v.numpy().copy())
        handles.append(model.layers[_key(name)].register_forward_pre_hook(pre))
    try:
        model.eval().to(device)
        for i in range(0, len(images), batch_size):
            model(images[i : i + batch_size].to(device))
    finally:
        model.to("cpu")
        for h in handles:
            h.remove()
    return {k: np.concatenate(v) for k, v in samples.items()}


def entropy_threshold(values: np.ndarray, bins: int = 2048, levels: int = 128) -> float:
    """TensorRT-style KL-divergence calibration: the clip threshold whose quantized histogram is closest."""
    v = np.abs(values)
    vmax = float(v.max()) if v.size else 0.0
    if vmax <= 0:
        return 1e-8
    hist, edges = np.histogram(v, bins=bins, range=(0, vmax))
    hist = hist.astype(np.float64)
    best_kl, best_i = np.inf, bins
    for i in range(levels, bins + 1):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        nz = p > 0
        # quantize the first i bins into `levels` groups, spread each group's mass over its non-empty bins
        idx = (np.arange(i) * levels) // i
        group_sum = np.bincount(idx, weights=hist[:i], minlength=levels)
        group_cnt = np.bincount(idx, weights=(hist[:i] > 0).astype(np.float64), minlength=levels)
        q = np.where(hist[:i] > 0, group_sum[idx] / np.maximum(group_cnt[idx], 1), 0.0)
        ps, qs = p.sum(), q.sum()
        if ps <= 0 or qs <= 0:
            continue
        pn, qn = p / ps, q / qs
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = float(np.sum(np.where(nz & (qn > 0), pn * np.log(pn / qn), 0.0)))
            kl += float(np.sum(nz & (qn == 0))) * 10.0  # mass q cannot represent
        if kl < best_kl:
            best_kl, best_i = kl, i
    return float(edges[best_i])


def calibrate(model: FoldedVGG, images: torch.Tensor, method: str = "percentile",
              device: torch.device | str = "cpu") -> dict[str, float]:
    """Clipping range alpha per quantized tensor; the image input is fixed at 1.0 (pixel grid)."""
    if method not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {method!r}; valid: {', '.join(CALIBRATIONS)}")
    values = collect_inputs(model, images, device=device)
    alphas: dict[str, float] = {}
    for i, name in enumerate(model.names):
        v = values[name]
        if i == 0:
            alphas[name] = 1.0
        elif method == "minmax":
            alphas[name] = float(v.max())
        elif method == "percentile":
            alphas[name] = float(np.percentile(v, PERCENTILE))
        else:
            alphas[name] = entropy_threshold(v)
        alphas[name] = max(alphas[name], 1e-6)
    return alphas


def quantize_folded(folded: FoldedVGG, layers: list[FoldedLayer], images: torch.Tensor, method: str,
                    symmetric: bool = True, masks: dict[str, torch.Tensor] | None = None,
                    device: torch.device | str = "cpu", weight_bits: int = DEFAULT_WEIGHT_BITS) -> QuantVGG:
    """PTQ: calibrate activation ranges on `images` (forward passes on `device`) and wrap the folded layers as
    a fake-quant model (on the CPU; QAT moves it through fer.train.fit)."""
    alphas = calibrate(folded, images, method, device=device)
    dropout = float(folded.dropout.p)
    return QuantVGG(layers, alphas, dropout=dropout, symmetric=symmetric, masks=masks, weight_bits=weight_bits).eval()


# ---------------------------------------------------------------- what gets stored / reported

@dataclass
class QuantizedLayer:
    """One layer of the int8 model, as stored and exported."""

    name: str
    kind: str
    w_int8: torch.Tensor
    w_scale: torch.Tensor  # fp32 [C_out]
    w_zero_point: torch.Tensor  # int8 [C_out] (zeros when symmetric)
    bias: torch.Tensor  # fp32 [C_out]
    act_scale: float  # uint8 grid of this layer's input
    act_zero_point: int
    act_max: float  # the clipping range alpha (same for both ONNX encodings)
    relu: bool
    pool_after: bool
    weight_error: float  # Eq. 9: mean |w - dequant(quant(w))|


@torch.no_grad()
def export_layers(q: QuantVGG) -> list[QuantizedLayer]:
    """The quantized model's integer weights, scales and layout, in execution order."""
    out = []
    for name, relu, pool in zip(q.names, q.relu_after, q.pool_after, strict=True):
        layer = q.layer(name)
        w = layer.weight if layer.mask is None else layer.weight * layer.mask
        w_int8 = layer.wq.quantize(w)
        scale = layer.wq.scale.detach().float().clone()
        zp = layer.wq.zero_point.detach().to(torch.int8).clone()
        shape = (-1,) + (1,) * (w.dim() - 1)
        deq = (w_int8.float() - zp.float().view(shape)) * scale.view(shape)
        a_scale = float(layer.act.scale)
        a_zp = int(layer.act.zero_point)
        out.append(QuantizedLayer(
            name=name, kind=layer.kind, w_int8=w_int8, w_scale=scale, w_zero_point=zp,
            bias=layer.bias.detach().float().clone(), act_scale=a_scale, act_zero_point=a_zp,
            act_max=a_scale * (A_QMAX - a_zp), relu=relu, pool_after=pool,
            weight_error=float((w - deq).abs().mean()),
        ))
    return out
