"""`bench import MODEL.onnx --out DIR`: an artifact directory for an ONNX file made by another tool.

Everything in the manifest is derived from the file itself, never taken from the user: parameter count and
parameter bytes from the graph's initializers (int8/uint8 weights count 1 byte), file bytes and sha256 from
disk, the input shape from the graph input, and the declared precision from the graph's quantization
(QuantizeLinear/DequantizeLinear on a weight initializer, or QLinear*/ConvInteger/MatMulInteger nodes). The
benchmark then checks that declaration against what each runtime really runs (harness.measure.evidence).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from backends.artifact import MANIFEST, ONNX_FILE, SCHEMA_VERSION, sha256_file
from common.errors import UserError

INT8_NODES = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger")
COMPUTE_NODES = ("Conv", "Gemm", "MatMul", *INT8_NODES)


def _dims(value_info: Any) -> list[int | str]:
    dims: list[int | str] = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?"))
    return dims


def graph_facts(path: Path) -> dict[str, Any]:
    """Parameters, parameter bytes, input shape, opset and quantization of an ONNX file (no runtime needed)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:
        raise UserError(f"{path}: not a valid ONNX model ({type(e).__name__}: {str(e).splitlines()[0][:200]})") \
            from None
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    params = nonzero = storage = 0
    quantized_weights = 0
    for name, init in inits.items():
        arr = numpy_helper.to_array(init)
        uses = consumers.get(name, [])
        is_weight = arr.ndim >= 1 and arr.size > 1 and (
            any(op in COMPUTE_NODES for op in uses)
            or (arr.dtype in (np.int8, np.uint8) and "DequantizeLinear" in uses))
        if not is_weight:  # scales, zero-points, shapes: not parameters
            continue
        params += int(arr.size)
        nonzero += int(np.count_nonzero(arr))
        storage += int(arr.size * arr.dtype.itemsize)
        quantized_weights += arr.dtype in (np.int8, np.uint8)
    ops = [n.op_type for n in graph.node]
    int8_nodes = sum(op in INT8_NODES for op in ops)
    qdq = ops.count("QuantizeLinear") + ops.count("DequantizeLinear")
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UserError(f"{path}: expected one image input, the graph has {len(inputs)}")
    shape = _dims(inputs[0])
    if len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        raise UserError(f"{path}: input {inputs[0].name!r} has shape {shape}; expected [N, C, H, W] with "
                        "fixed C, H, W")
    precision = "int8" if (quantized_weights or int8_nodes) else "fp32"
    return {
        "params": params, "nonzero_params": nonzero, "storage_bytes": storage, "precision": precision,
        "input_shape": [int(d) for d in shape[1:]],
        "quantization": {"int8_weight_initializers": quantized_weights, "int8_nodes": int8_nodes,
                         "qdq_nodes": qdq},
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "gmac": graph_gmac(model),
    }


def graph_gmac(model: Any) -> float | None:
    """Multiply-accumulates per image (G) of the Conv/Gemm/MatMul nodes, from shape inference at batch 1."""
    import onnx
    from onnx import numpy_helper, shape_inference

    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name not in inits and inp.type.tensor_type.shape.dim:
            inp.type.tensor_type.shape.dim[0].dim_value = 1
    try:
        inferred = shape_inference.infer_shapes(m).graph
    except Exception:
        return None
    shapes = {v.name: _dims(v) for v in [*inferred.value_info, *inferred.output, *inferred.input]}
    weight_index = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3, "Gemm": 1, "MatMul": 1, "MatMulInteger": 1,
                    "QLinearMatMul": 3}
    deq = {n.output[0]: n.input[0] for n in m.graph.node if n.op_type == "DequantizeLinear"}
    macs = 0
    for n in m.graph.node:
        if n.op_type not in weight_index or len(n.input) <= weight_index[n.op_type]:
            continue
        w_name = n.input[weight_index[n.op_type]]
        w = inits.get(deq.get(w_name, w_name))
        out = shapes.get(n.output[0])
        if w is None or not out or not all(isinstance(d, int) for d in out):
            continue
        n_out = 1
        for d in out:
            n_out *= int(d)
        if "Conv" in n.op_type:
            macs += n_out * int(w[0].size)  # each output element: Cin/group x kH x kW MACs
        else:
            macs += n_out * int(w.shape[0] if n.op_type != "Gemm" or not _trans_b(n) else w.shape[1])
    return macs / 1e9 if macs else None


def _trans_b(node: Any) -> bool:
    return any(a.name == "transB" and a.i == 1 for a in node.attribute)


def import_onnx(src: Path, out: Path, variant: str | None = None) -> Path:
    """Write artifact directory `out` (temp dir, then renamed) holding `src` as model.onnx and a derived
    manifest; UserError for a missing/invalid file or an existing non-empty `out`."""
    import onnx
    import torch

    if not src.is_file():
        raise UserError(f"{src}: no such ONNX file")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: exists and is not empty; choose a new directory")
    facts = graph_facts(src)
    name = variant or src.stem
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        shutil.copyfile(src, tmp / ONNX_FILE)
        f = tmp / ONNX_FILE
        manifest: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "variant": name, "method": "imported",
            "method_label": f"imported ({facts['producer'] or 'unknown producer'})", "sparsity": None,
            "precision": facts["precision"], "params": facts["params"], "nonzero_params": facts["nonzero_params"],
            "storage_bytes": facts["storage_bytes"], "storage_mb": facts["storage_bytes"] / 1e6,
            "compression_ratio": None, "gmac": facts["gmac"], "val_accuracy": None, "test_accuracy": None,
            "config_hash": None, "dataset": None, "synthetic": None,
            "files": {ONNX_FILE: {"bytes": f.stat().st_size, "sha256": sha256_file(f)}},
            "versions": {"onnx": onnx.__version__, "torch": torch.__version__},
            "input_shape": facts["input_shape"], "imported_from": str(src.resolve()),
            "quantization": facts["quantization"], "opset": facts["opset"],
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
