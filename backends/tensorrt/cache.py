"""TensorRT logic that needs no GPU: optimization-profile shapes, the plan-cache key, the plan file the
runtime loads, and reading layer precisions out of the engine inspector's JSON. Tested on CPU; used by
backends.tensorrt.backend.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.atomic import write_bytes_atomic
from common.errors import UserError


@dataclass(frozen=True)
class Profile:
    """One optimization profile for the batch dimension: batch in [min, max], kernels tuned for `opt`."""

    min: int
    opt: int
    max: int

    def shapes(self, chw: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        return (self.min, *chw), (self.opt, *chw), (self.max, *chw)


def profile_batches(batch_sizes: list[int] | tuple[int, ...], max_batch: int | None = None) -> list[Profile]:
    """Contiguous profiles covering every batch from 1 to the largest, each configured batch size the `opt`
    (and `max`) of its own profile: batch 1 gets kernels tuned for 1, batch 32 for 32, and any batch in
    between (e.g. the last, partial chunk of the accuracy pass) still has a profile.

    [1, 32] -> [(1,1,1), (2,32,32)]; with max_batch=64 -> [(1,1,1), (2,32,32), (33,64,64)].
    """
    sizes = sorted(set(int(b) for b in batch_sizes))
    if not sizes or sizes[0] <= 0:
        raise UserError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    if max_batch is not None:
        if max_batch <= 0:
            raise UserError(f"backends.tensorrt.max_batch = {max_batch}: must be >= 1")
        if max_batch < sizes[-1]:
            raise UserError(f"backends.tensorrt.max_batch = {max_batch} is below the largest batch size {sizes[-1]}")
        if max_batch > sizes[-1]:
            sizes.append(max_batch)
    profiles, lo = [], 1
    for b in sizes:
        profiles.append(Profile(lo, b, b))
        lo = b + 1
    return profiles


def profile_index(profiles: list[Profile], batch: int) -> int:
    """Index of the profile whose range holds `batch`; UserError if none does."""
    for i, p in enumerate(profiles):
        if p.min <= batch <= p.max:
            return i
    raise UserError(f"tensorrt: batch {batch} is outside the engine's profiles (1..{profiles[-1].max})")


def cache_key(onnx_sha256: str, trt_version: str, gpu_name: str, compute_capability: str,
              settings: dict[str, Any]) -> str:
    """Key of an engine plan: it is valid only for the same ONNX file, TensorRT version, GPU and settings."""
    blob = json.dumps(
        {"onnx": onnx_sha256, "tensorrt": trt_version, "gpu": gpu_name, "sm": compute_capability,
         "settings": settings},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def timing_cache_name(trt_version: str, gpu_name: str) -> str:
    """File name of the timing cache (shared by every plan built with this TensorRT on this GPU)."""
    safe = "".join(c if c.isalnum() else "-" for c in gpu_name).strip("-").lower()
    return f"timing-trt{trt_version}-{safe}.cache"


CONV_FC_TOKENS = ("convolution", "fullyconnected", "gemm", "matrixmultiply", "matmul")


def layer_precisions(engine_info_json: str) -> tuple[int, int, dict[str, int]]:
    """(conv/FC layers running in INT8, all conv/FC layers, {"<type>:<precision>": n}) from the inspector's
    `get_engine_information(LayerInformationFormat.JSON)` (needs ProfilingVerbosity.DETAILED at build).

    A layer's precision is the data type of its first input: TensorRT 10 prints one "Format/Datatype" string
    ("Channel major INT8 format where channel % 16 == 0", "Row major linear FP32"); TensorRT 11 splits it into
    "DataType" ("Int8", "Float", "Half") and "Format". A dynamic-shape engine inspected without an execution
    context prints "N/A due to dynamic shapes": such a layer counts as "?" (never INT8).
    """
    try:
        info = json.loads(engine_info_json)
    except json.JSONDecodeError:
        return 0, 0, {}
    layers = info.get("Layers", []) if isinstance(info, dict) else []
    int8 = total = 0
    counts: dict[str, int] = {}
    for layer in layers:
        if not isinstance(layer, dict):  # LayerInformationFormat.ONELINE gives plain names
            continue
        kind = str(layer.get("ParameterType") or layer.get("LayerType") or "")
        if not any(tok in kind.lower() for tok in CONV_FC_TOKENS):
            continue
        inputs = layer.get("Inputs") or []
        precision = _precision_of(tensor_datatype(inputs[0]) if inputs and isinstance(inputs[0], dict) else "")
        total += 1
        int8 += precision == "INT8"
        key = f"{kind}:{precision}"
        counts[key] = counts.get(key, 0) + 1
    return int8, total, counts


def tensor_datatype(tensor: dict[str, Any]) -> str:
    """The data-type text of one inspector tensor entry, TensorRT 10 ("Format/Datatype") or 11 ("DataType")."""
    if "DataType" in tensor:  # TensorRT 11: the type on its own; the format string may still name a type
        return str(tensor.get("DataType") or "")
    return str(tensor.get("Format/Datatype", ""))


def inspector_formats_known(engine_info_json: str) -> bool:
    """False when the inspector printed "N/A due to dynamic shapes" (no execution context with shapes set)."""
    return "N/A due to dynamic shapes" not in engine_info_json


def _precision_of(fmt: str) -> str:
    low = fmt.lower()
    if "n/a" in low:
        return "?"
    for token, name in (("uint8", "UINT8"), ("int8", "INT8"), ("fp8", "FP8"), ("bfloat16", "BF16"),
                        ("fp16", "FP16"), ("half", "FP16"), ("fp32", "FP32"), ("float", "FP32"),
                        ("int32", "INT32")):
        if token in low:
            return name
    return "?"


def read_or_build_plan(plan_path: Path, build: Callable[[], bytes]) -> tuple[bytes, bool]:
    """(the serialized engine the runtime will deserialize, whether it came from the cache): the cached plan
    file when there is one, else `build()` written atomically to `plan_path`. Its length is the row's
    `file_bytes`: what the runtime loaded, not the ONNX file it was built from."""
    if plan_path.is_file():
        return plan_path.read_bytes(), True
    plan = build()
    write_bytes_atomic(plan_path, plan)
    return plan, False
