"""Rebuild a PyTorch model from an artifact's `model.pt` (no pickled code: `weights_only=True`).

fp32 variants: `{"arch", "state_dict", "quant": None}` -> `fer.model.build_model(arch)` + weights.
int8 variants: the payload's "quant" section (format documented in compression/writer.py) -> either a
fake-quant model (float kernels that reproduce the int8 numerics: the reference every backend is compared
with) or, where torch still ships the eager x86/fbgemm engine, real int8 kernels.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backends.artifact import TORCH_FILE, Artifact
from common.errors import UserError
from fer.checkpoint import model_from_payload, read_model_file

FAKE_QUANT_LABEL = "int8 simulated (fake-quant)"
INT8_KERNEL_LABEL = "int8 (torch x86 eager quantized kernels)"


def read_payload(path: Path) -> dict[str, Any]:
    """The model.pt dict; UserError (one line) if it is not a readable weights-only checkpoint."""
    return read_model_file(path, "model file")


def build_fp32(payload: dict[str, Any]) -> nn.Module:
    """The float VGG16-FER described by `payload` (fp32 variants), in eval mode."""
    return model_from_payload(payload, "model.pt")


def int8_kernels_supported() -> bool:
    """Does this torch still ship the eager quantized x86 engine (real int8 conv/linear on CPU)?"""
    try:
        import torch.ao.nn.quantized
    except Exception:
        return False
    return "x86" in torch.backends.quantized.supported_engines or (
        "fbgemm" in torch.backends.quantized.supported_engines
    )


def load_reference(artifact: Artifact) -> tuple[nn.Module, str]:
    """The PyTorch reference model for `artifact`: fp32 natively, int8 as fake-quant. Returns (model, label)."""
    payload = read_payload(artifact.file(TORCH_FILE))
    if payload.get("quant") is None:
        return build_fp32(payload), "fp32"
    return build_fake_quant(payload), FAKE_QUANT_LABEL


def load_int8_kernels(artifact: Artifact) -> nn.Module | None:
    """A model running real int8 kernels (x86 eager engine) with the artifact's scales, or None if impossible."""
    if not int8_kernels_supported():
        return None
    payload = read_payload(artifact.file(TORCH_FILE))
    if payload.get("quant") is None:
        return None
    return build_int8_kernels(payload)



def _layer_plan(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Per layer, in execution order: name, kind, float weight (dequantized), int8 weight, scales, pool/relu."""
    arch, state, quant = payload["arch"], payload["state_dict"], payload["quant"]
    scheme = payload.get("scheme") or {}
    pool_after: dict[str, bool] = {}
    slot, feats = 0, list(arch["features"])
    for j, item in enumerate(feats):
        if item == "M":
            slot += 1
        else:
            pool_after[f"features.{slot}"] = j + 1 < len(feats) and feats[j + 1] == "M"
            slot += 3
    names = list(quant)
    plan = []
    for k, name in enumerate(names):
        q = quant[name]
        w_int = state[f"{name}.weight"]
        w_scale = torch.as_tensor(q["w_scale"], dtype=torch.float32)
        w_zp = torch.as_tensor(q["w_zero_point"]).to(torch.float32)
        shape = (-1,) + (1,) * (w_int.dim() - 1)
        w_float = (w_int.to(torch.float32) - w_zp.view(shape)) * w_scale.view(shape)
        if q.get("act_dtype", "uint8") != "uint8":
            raise UserError(f"model.pt: layer {name} has activation dtype {q.get('act_dtype')!r}; expected uint8")
        plan.append({
            "name": name, "kind": "conv" if w_int.dim() == 4 else "linear", "w_int8": w_int,
            "w_scale": w_scale, "w_zero_point": torch.as_tensor(q["w_zero_point"]).to(torch.int64),
            "w_float": w_float, "bias": state[f"{name}.bias"].to(torch.float32),
            "act_scale": float(q["act_scale"]), "act_zero_point": int(q["act_zero_point"]),
            "a_qmin": int(scheme.get("a_qmin", 0)), "a_qmax": int(scheme.get("a_qmax", 255)),
            "relu": k < len(names) - 1, "pool": pool_after.get(name, False),
        })
    return plan


class FakeQuantVGG(nn.Module):
    """The int8 model's arithmetic in float: each layer's input quantized to uint8 with the learned scale,
    weights int8 per channel, conv/linear in float (what model.onnx computes, up to int32 bias rounding)."""

    def __init__(self, plan: list[dict[str, Any]]) -> None:
        super().__init__()
        self.plan = [{k: v for k, v in p.items() if k not in ("w_float", "bias", "w_int8")} for p in plan]
        self.weights = nn.ParameterList([nn.Parameter(p["w_float"], requires_grad=False) for p in plan])
        self.biases = nn.ParameterList([nn.Parameter(p["bias"], requires_grad=False) for p in plan])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        for p, w, b in zip(self.plan, self.weights, self.biases, strict=True):
            if p["kind"] == "linear" and x.dim() == 4:
                x = torch.flatten(x, 1)
            s, zp = p["act_scale"], p["act_zero_point"]
            x = (torch.clamp(torch.round(x / s) + zp, p["a_qmin"], p["a_qmax"]) - zp) * s
            x = F.conv2d(x, w, b, padding=1) if p["kind"] == "conv" else F.linear(x, w, b)
            if p["relu"]:
                x = F.relu(x)
            if p["pool"]:
                x = F.max_pool2d(x, 2, 2)
        return x


class Int8KernelVGG(nn.Module):
    """Real int8 kernels (torch.ao eager x86 engine): quantize the input once, quantized conv+ReLU / linear+ReLU
    layers requantizing to the next layer's learned input scale, int8 max-pool; the last linear runs in float
    on the dequantized activations (its output is the float logits, as in model.onnx)."""

    def __init__(self, plan: list[dict[str, Any]]) -> None:
        super().__init__()
        import torch.ao.nn.intrinsic.quantized as nniq

        self.in_scale, self.in_zp = plan[0]["act_scale"], plan[0]["act_zero_point"]
        mods: list[nn.Module] = []
        self.pool: list[bool] = []
        self.kinds: list[str] = []
        for p, nxt in itertools.pairwise(plan):
            qw = torch._make_per_channel_quantized_tensor(
                p["w_int8"].to(torch.int8), p["w_scale"].double(), p["w_zero_point"], 0)
            if p["kind"] == "conv":
                out_c, in_c = p["w_int8"].shape[:2]
                m: Any = nniq.ConvReLU2d(int(in_c), int(out_c), 3, padding=1)
            else:
                out_f, in_f = p["w_int8"].shape
                m = nniq.LinearReLU(int(in_f), int(out_f))
            m.set_weight_bias(qw, p["bias"])
            m.scale, m.zero_point = float(nxt["act_scale"]), int(nxt["act_zero_point"])
            mods.append(m)
            self.pool.append(bool(p["pool"]))
            self.kinds.append(p["kind"])
        self.layers = nn.ModuleList(mods)
        last = plan[-1]
        self.last_w = nn.Parameter(last["w_float"], requires_grad=False)
        self.last_b = nn.Parameter(last["bias"], requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        q = torch.quantize_per_tensor(x.contiguous(), self.in_scale, self.in_zp, torch.quint8)
        for m, pool, kind in zip(self.layers, self.pool, self.kinds, strict=True):
            if kind == "linear" and q.dim() == 4:
                q = torch.flatten(q, 1)
            q = m(q)
            if pool:
                q = F.max_pool2d(q, 2, 2)
        x = q.dequantize()
        if x.dim() == 4:
            x = torch.flatten(x, 1)
        return F.linear(x, self.last_w, self.last_b)


def build_fake_quant(payload: dict[str, Any]) -> nn.Module:
    """Float model reproducing the int8 numerics of `payload["quant"]` (format: compression/writer.py)."""
    try:
        return FakeQuantVGG(_layer_plan(payload)).eval()
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"model.pt: int8 payload is not in the fer-bench/int8-folded-v1 format ({e})") from None


def build_int8_kernels(payload: dict[str, Any]) -> nn.Module | None:
    """Eager x86 quantized model with the artifact's exact scales, or None when this torch/format cannot."""
    engines = torch.backends.quantized.supported_engines
    engine = "x86" if "x86" in engines else "fbgemm" if "fbgemm" in engines else None
    if engine is None:
        return None
    try:
        torch.backends.quantized.engine = engine
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the eager flow is deprecated (moved to torchao); still ships
            model = Int8KernelVGG(_layer_plan(payload)).eval()
            with torch.inference_mode():
                model(torch.zeros(1, int(payload["arch"].get("in_channels", 1)), 48, 48))
        return model
    except Exception:
        return None


def layer_counts(model: nn.Module) -> tuple[int, int]:
    """(conv/FC layers running int8 kernels, all conv/FC layers) of a model built by this module."""
    if isinstance(model, Int8KernelVGG):
        return len(model.layers), len(model.layers) + 1
    if isinstance(model, FakeQuantVGG):
        return 0, len(model.plan)
    n = sum(isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules())
    return 0, n



INT8_OPS = ("quantized::conv2d", "quantized::conv2d_relu", "quantized::linear", "quantized::linear_relu",
            "quantized::conv2d_add", "quantized::conv2d_add_relu", "quantized::linear_dynamic")
FLOAT_OPS = ("aten::conv2d", "aten::linear", "aten::convolution", "aten::addmm", "aten::mm")


def executed_layer_counts(model: nn.Module, example: torch.Tensor) -> tuple[int, int, dict[str, int]]:
    """(conv/FC layers that ran int8 kernels, all conv/FC layers, {op: count}) of ONE inference of `model`: the
    operators the dispatcher ran (a TorchDispatchMode records each call, silently, unlike the profiler), not
    what the model's class says."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts: dict[str, int] = {}

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            name = str(func.name()).split(".")[0]
            if name in INT8_OPS or name in FLOAT_OPS:
                counts[name] = counts.get(name, 0) + 1
            return func(*args, **(kwargs or {}))

    with torch.inference_mode(), Record():
        model(example)
    int8 = sum(n for op, n in counts.items() if op in INT8_OPS)
    return int8, int8 + sum(n for op, n in counts.items() if op in FLOAT_OPS), dict(sorted(counts.items()))
