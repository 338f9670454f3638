"""Write one variant directory atomically (temp dir, then rename) per backends/artifact.py.

model.pt format (a plain dict of tensors / numbers / strings; `torch.load(path, weights_only=True)`)
-------------------------------------------------------------------------------------------------
fp32 variants ("format": "fer-bench/fp32-v1"):
    {"format", "arch": arch dict (real, possibly pruned, channel counts; see fer/model.py),
     "state_dict": VGG16FER state_dict (with BatchNorm), "folded": False, "quant": None}
    Rebuild: fer.model.build_model(arch).load_state_dict(state_dict).

int8 variants ("format": "fer-bench/int8-folded-v1"): BN is folded into the convs, no BN tensors.
    {"format", "arch", "folded": True,
     "state_dict": {"<layer>.weight": int8 tensor [C_out, C_in, 3, 3] (conv) or [out, in] (linear),
                    "<layer>.bias":   float32 [C_out]},
     "quant": {"<layer>": {"w_scale": float32 [C_out], "w_zero_point": int8 [C_out] (all 0 if symmetric),
                           "act_scale": float, "act_zero_point": int, "act_max": float,
                           "act_dtype": "uint8", "weight_error": float}},
     "scheme": {"weights": "int<b> per-channel axis 0, stored as int8", "activations": "uint8 per-tensor",
                "symmetric": bool, "weight_bits": b (7 or 8; absent in older files: 8),
                "w_qmin": -63 at 7 bits, -127 at 8 (asymmetric: -64 / -128), "w_qmax": 63 / 127,
                "a_qmin": 0, "a_qmax": 255}}
    Every stored weight lies in [w_qmin, w_qmax]; at 7 bits no u8 x s8 int16 pair-sum can saturate (quant.py).
    <layer> is the original VGG16FER module name: "features.<i>" for the 13 convs (i = 0, 3, 7, 10, 14,
    17, 20, 24, 27, 30, 34, 37, 40: each conv takes 3 slots conv/BN/ReLU, each "M" one slot) then
    "classifier.0" and "classifier.3"; quant and state_dict keys are in execution order.
    Forward pass of the int8 model (what model.onnx computes, up to int32 bias rounding), x in [0, 1]:
        for each layer in order:
            if linear and x is 4-D: x = flatten(x, 1)
            x = (clamp(round(x / act_scale) + act_zero_point, 0, 255) - act_zero_point) * act_scale
            w = (weight.float() - w_zero_point[:, None...]) * w_scale[:, None...]
            x = conv2d(x, w, bias, padding=1) or linear(x, w, bias)
            ReLU after every layer except classifier.3; 2x2 max-pool after the convs followed by "M" in arch
    (dropout is identity at inference). The TensorRT file encodes the same act_max as int8:
    scale = act_max / 127, zero-point 0.

ONNX files: input "input" float [batch, C, 48, 48] in [0, 1], output "logits" [batch, 7]; see export.py.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from backends.artifact import MANIFEST, SCHEMA_VERSION, sha256_file
from compression.quant import A_QMAX, DEFAULT_WEIGHT_BITS, QuantizedLayer, weight_range

FileWriter = Callable[[Path], None]


def copy_variant(src: Path, out_dir: Path, variant: str) -> Path:
    """A copy of the artifact directory `src` as out_dir/variant, swapped in atomically (replacing an older one);
    backend caches kept beside the files (`cache/`) are left behind: they belong to the machine that made them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{variant}-", dir=out_dir))
    try:
        shutil.copytree(src, tmp / "x", ignore=shutil.ignore_patterns("cache", ".tmp-*", ".old-*"))
        final = out_dir / variant
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{variant}-", dir=out_dir))
            os.replace(final, old / "x")
        os.replace(tmp / "x", final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_variant(out_dir: Path, variant: str, files: dict[str, FileWriter], manifest: dict[str, Any],
                  finish: Callable[[Path, dict[str, Any]], None] | None = None) -> Path:
    """Create out_dir/variant atomically: each `files[name](path)` writes one file into a temp dir, the
    manifest gets "files" (bytes + sha256) and "schema_version", `finish(tmp_dir, manifest)` may add
    verification results, then the temp dir is renamed into place (replacing an older one).
    On any exception the temp dir is removed and nothing is left behind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{variant}-", dir=out_dir))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it 0700
        for name, write in files.items():
            write(tmp / name)
        manifest = dict(manifest)
        manifest["schema_version"] = SCHEMA_VERSION
        manifest["files"] = {n: {"bytes": (tmp / n).stat().st_size, "sha256": sha256_file(tmp / n)} for n in files}
        if finish is not None:
            finish(tmp, manifest)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        final = out_dir / variant
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{variant}-", dir=out_dir))
            os.replace(final, old / "x")
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def int8_payload(arch: dict[str, Any], qlayers: list[QuantizedLayer], symmetric: bool,
                 weight_bits: int = DEFAULT_WEIGHT_BITS) -> dict[str, Any]:
    """model.pt of an int8 variant (format documented above); ValueError if a weight lies outside the
    declared range (a file must not claim 7 bits and carry values that saturate)."""
    qmin, qmax = weight_range(weight_bits, symmetric)
    state: dict[str, torch.Tensor] = {}
    quant: dict[str, dict[str, Any]] = {}
    for ql in qlayers:
        lo, hi = int(ql.w_int8.min()), int(ql.w_int8.max())
        if lo < qmin or hi > qmax:
            raise ValueError(f"{ql.name}: weights in [{lo}, {hi}], outside the {weight_bits}-bit range "
                             f"[{qmin}, {qmax}]")
        state[f"{ql.name}.weight"] = ql.w_int8.clone()
        state[f"{ql.name}.bias"] = ql.bias.clone()
        quant[ql.name] = {"w_scale": ql.w_scale.clone(), "w_zero_point": ql.w_zero_point.clone(),
                          "act_scale": ql.act_scale, "act_zero_point": ql.act_zero_point, "act_max": ql.act_max,
                          "act_dtype": "uint8", "weight_error": ql.weight_error}
    return {
        "format": "fer-bench/int8-folded-v1", "arch": arch, "folded": True, "state_dict": state, "quant": quant,
        "scheme": {"weights": f"int{weight_bits} per-channel axis 0, stored as int8", "activations": "uint8 per-tensor",
                   "symmetric": symmetric, "weight_bits": weight_bits, "w_qmin": qmin, "w_qmax": qmax,
                   "a_qmin": 0, "a_qmax": A_QMAX},
    }
