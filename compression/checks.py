"""Verification policy of a freshly written variant (run on its temp dir, before it is renamed into place).

A variant that breaks an encoding's rules, or whose int8 would not really run as int8 on ONNX Runtime and
OpenVINO, fails its build; low agreement with the PyTorch model is reported in the manifest and warned about.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from backends.artifact import ONNX_FILE, TRT_ONNX_FILE
from compression import qdq_check, verify

MIN_AGREEMENT = 0.99


def verify_fp32(tmp: Path, variant: str, verify_x: np.ndarray, torch_logits: np.ndarray) -> dict[str, Any]:
    """FP32 ONNX graph rules, and ONNX Runtime's agreement with the PyTorch model."""
    errs = qdq_check.check_fp32(onnx.load(str(tmp / ONNX_FILE)))
    if errs:
        raise RuntimeError(f"{variant}: FP32 ONNX check failed: {errs[:3]}")
    ort = verify.ort_logits(tmp / ONNX_FILE, verify_x)
    return {
        "images": len(verify_x),
        "onnxruntime_vs_torch_top1_agreement": verify.top1_agreement(ort, torch_logits),
        "onnxruntime_vs_torch_max_abs_diff": float(np.abs(ort - torch_logits).max()),
    }


def verify_int8(tmp: Path, variant: str, verify_x: np.ndarray, q_logits: np.ndarray, symmetric: bool, n_conv: int,
                say: Callable[[str], None]) -> dict[str, Any]:
    """Check an int8 variant's two encodings in its temp dir: QDQ rules, int8 really fused on ONNX Runtime and
    OpenVINO, and top-1 agreement with the PyTorch model. RuntimeError (the build fails) where int8 would not run."""
    cpu_path = tmp / ONNX_FILE
    errs = qdq_check.check_cpu(onnx.load(str(cpu_path)), symmetric=symmetric)
    if errs:
        raise RuntimeError(f"{variant}: model.onnx breaks the CPU QDQ rules: {errs[:3]}")
    ops = verify.ort_optimized_ops(cpu_path)
    ov_prec = verify.ov_conv_precisions(cpu_path)
    ort = verify.ort_logits(cpu_path, verify_x)
    ov = verify.ov_logits(cpu_path, verify_x)
    out: dict[str, Any] = {
        "images": len(verify_x),
        "cpu_encoding_rules": "pass",
        "onnxruntime_qlinearconv": ops.get("QLinearConv", 0), "convs": n_conv,
        "openvino_conv_runtime_precision": dict(ov_prec),
        "onnxruntime_vs_torch_top1_agreement": verify.top1_agreement(ort, q_logits),
        "openvino_vs_torch_top1_agreement": verify.top1_agreement(ov, q_logits),
    }
    if symmetric:
        if ops.get("QLinearConv", 0) != n_conv:
            raise RuntimeError(f"{variant}: ONNX Runtime fused {ops.get('QLinearConv', 0)} of {n_conv} convs "
                               f"into QLinearConv; int8 would not really run")
        if sum(v for k, v in ov_prec.items() if k in ("u8", "i8")) != n_conv:
            raise RuntimeError(f"{variant}: OpenVINO runs convolutions in {dict(ov_prec)}, not int8")
        trt_path = tmp / TRT_ONNX_FILE
        terrs = qdq_check.check_trt(onnx.load(str(trt_path)))
        if terrs:
            raise RuntimeError(f"{variant}: model.trt.onnx breaks TensorRT's QDQ rules: {terrs[:3]}")
        trt = verify.ort_logits(trt_path, verify_x)
        out["tensorrt_encoding_rules"] = "pass"
        out["trt_encoding_vs_cpu_encoding_top1_agreement"] = verify.top1_agreement(trt, ort)
    low = {k: v for k, v in out.items() if k.endswith("agreement") and v < MIN_AGREEMENT}
    if low:
        say(f"{variant}: warning: top-1 agreement below {MIN_AGREEMENT}: {low}")
    return out
