"""Check that exported files really run (and in int8) on ONNX Runtime and OpenVINO CPU.

- `ort_optimized_ops(path)`: op counts of ONNX Runtime's optimized graph (SessionOptions.optimized_model_filepath);
  int8 really runs when every Conv became a QLinearConv.
- `ov_conv_precisions(path)`: runtimePrecision of every convolution in OpenVINO's compiled runtime model.
- `ort_logits` / `ov_logits`: run a file on a batch of float images (one thread; f32 precision hint).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from backends.openvino.compile import compile_cpu


def _ort_session(path: Path, optimized_to: Path | None = None) -> object:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if optimized_to is not None:
        so.optimized_model_filepath = str(optimized_to)
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    if sess.get_providers()[0] != "CPUExecutionProvider":
        raise RuntimeError(f"ONNX Runtime ran on {sess.get_providers()}, expected CPUExecutionProvider")
    return sess


def ort_optimized_ops(path: Path) -> Counter[str]:
    """Op-type counts of ONNX Runtime's optimized CPU graph of `path`."""
    with tempfile.TemporaryDirectory() as d:
        opt = Path(d) / "optimized.onnx"
        _ort_session(path, opt)
        m = onnx.load(str(opt))
    return Counter(n.op_type for n in m.graph.node)


def ort_logits(path: Path, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of `path` on float images [N, C, 48, 48] with ONNX Runtime CPU."""
    sess = _ort_session(path)
    outs = [sess.run(None, {"input": images[i : i + batch_size]})[0]  # type: ignore[attr-defined]
            for i in range(0, len(images), batch_size)]
    return np.concatenate(outs)


def _ov_compiled(path: Path) -> object:
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
    return compile_cpu(core, core.read_model(str(path)), config, lambda: core.read_model(str(path)))[0]


def ov_conv_precisions(path: Path) -> Counter[str]:
    """runtimePrecision counts over the convolutions of OpenVINO's compiled runtime model."""
    compiled = _ov_compiled(path)
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ops():  # type: ignore[attr-defined]
        rt = op.get_rt_info()
        layer_type = rt["layerType"].astype(str) if "layerType" in rt else ""
        if layer_type.lower().startswith("convolution"):
            counts[rt["runtimePrecision"].astype(str) if "runtimePrecision" in rt else "?"] += 1
    return counts


def ov_logits(path: Path, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of `path` on float images with OpenVINO CPU (f32 precision hint)."""
    compiled = _ov_compiled(path)
    outs = []
    for i in range(0, len(images), batch_size):
        res = compiled(images[i : i + batch_size])  # type: ignore[operator]
        outs.append(np.asarray(res[0]))
    return np.concatenate(outs)


def top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of rows whose argmax agrees."""
    return float((a.argmax(1) == b.argmax(1)).mean()) if len(a) else 1.0
