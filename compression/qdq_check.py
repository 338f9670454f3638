"""Rule checkers for the two QDQ encodings (pure ONNX graph inspection; TensorRT is not needed).

`check_cpu(model)` and `check_trt(model)` return a list of violations (empty = passes); each message names
the node and the rule. `check_fp32(model)` checks the FP32 file has no Q/DQ and a dynamic batch axis.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, numpy_helper

COMPUTE_OPS = ("Conv", "Gemm")


class _Index:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.inits = {t.name: t for t in model.graph.initializer}
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in model.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def const(self, name: str) -> TensorProto | None:
        if name in self.inits:
            return self.inits[name]
        p = self.producer.get(name)
        if p is not None and p.op_type == "Constant":
            return p.attribute[0].t
        return None

    def opset(self) -> int:
        return max((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def _common(ix: _Index) -> list[str]:
    errs: list[str] = []
    if ix.opset() < 13:
        errs.append(f"opset {ix.opset()} < 13 (per-axis Q/DQ needs opset >= 13)")
    inp = ix.model.graph.input[0]
    dims = inp.type.tensor_type.shape.dim
    if not dims or not dims[0].dim_param:
        errs.append(f"input {inp.name!r}: batch axis is not dynamic (dim_param)")
    for n in ix.model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            for what, name in zip(("scale", "zero_point"), n.input[1:3], strict=False):
                if ix.const(name) is None:
                    errs.append(f"{n.name}: {what} {name!r} is computed in the graph, not a constant")
    convs = [n for n in ix.model.graph.node if n.op_type in COMPUTE_OPS]
    if not convs:
        errs.append("no Conv/Gemm nodes")
    for n in convs:
        errs += _check_weight(ix, n)
        src = ix.producer.get(n.input[0])
        if src is None or src.op_type != "DequantizeLinear":
            errs.append(f"{n.name}: activation input is not fed by DequantizeLinear")
    return errs


def _check_weight(ix: _Index, n: onnx.NodeProto) -> list[str]:
    dq = ix.producer.get(n.input[1])
    if dq is None or dq.op_type != "DequantizeLinear":
        return [f"{n.name}: weight is not fed by DequantizeLinear"]
    w = ix.const(dq.input[0])
    if w is None or w.data_type != TensorProto.INT8:
        return [f"{n.name}: weight is not an int8 initializer"]
    errs = []
    c_out = int(w.dims[0])
    scale = ix.const(dq.input[1])
    if scale is not None:
        s = numpy_helper.to_array(scale)
        if s.ndim != 1 or s.shape[0] != c_out:
            errs.append(f"{n.name}: weight scale is not per output channel (shape {list(s.shape)}, C_out {c_out})")
        elif (s <= 0).any():
            errs.append(f"{n.name}: weight scale has non-positive entries")
    if _attr(dq, "axis", 1) != 0:
        errs.append(f"{n.name}: weight DequantizeLinear axis is {_attr(dq, 'axis', 1)}, must be 0")
    if n.op_type == "Gemm" and _attr(n, "transB", 0) != 1:
        errs.append(f"{n.name}: Gemm weight must be [out, in] with transB=1 (axis 0 = output channel)")
    return errs


def _zero_points(ix: _Index, n: onnx.NodeProto) -> tuple[int | None, list[int]]:
    zp = ix.const(n.input[2]) if len(n.input) > 2 else None
    if zp is None:
        return None, []
    return zp.data_type, [int(v) for v in numpy_helper.to_array(zp).flatten()]


def check_cpu(model: onnx.ModelProto, symmetric: bool = True) -> list[str]:
    """CPU encoding: uint8 activations (zero-point 0 when symmetric), int8 per-channel weights,
    Q/DQ on the inputs and outputs of every Conv/Gemm (the last Gemm's output stays float)."""
    ix = _Index(model)
    errs = _common(ix)
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear":
            dtype, zps = _zero_points(ix, n)
            if dtype != TensorProto.UINT8:
                errs.append(f"{n.name}: activation quantized to {TensorProto.DataType.Name(dtype or 0)}, not uint8")
            if symmetric and any(zps):
                errs.append(f"{n.name}: activation zero-point {zps} is not 0")
            s = ix.const(n.input[1])
            if s is not None and numpy_helper.to_array(s).size != 1:
                errs.append(f"{n.name}: activation scale is not per-tensor")
    outputs = {o.name for o in model.graph.output}
    for n in model.graph.node:
        if n.op_type not in COMPUTE_OPS or n.output[0] in outputs:
            continue
        nxt = ix.consumers.get(n.output[0], [])
        if nxt and nxt[0].op_type == "Relu":
            nxt = ix.consumers.get(nxt[0].output[0], [])
        if not nxt or any(c.op_type != "QuantizeLinear" for c in nxt):
            errs.append(f"{n.name}: output is not quantized (needs QuantizeLinear, optionally after Relu)")
    return errs


def check_trt(model: onnx.ModelProto) -> list[str]:
    """TensorRT explicit quantization: int8 (never uint8) Q/DQ, zero-point 0 everywhere, per-channel weight
    scales on axis 0, per-tensor activation scales, Q/DQ on Conv/Gemm inputs, constant scales, opset >= 13."""
    ix = _Index(model)
    errs = _common(ix)
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        dtype, zps = _zero_points(ix, n)
        if n.op_type == "DequantizeLinear" and ix.const(n.input[0]) is not None:
            x = ix.const(n.input[0])
            if x is None:
                raise RuntimeError('internal: expected x is not None')
            if x.data_type != TensorProto.INT8:
                errs.append(f"{n.name}: quantized constant is {TensorProto.DataType.Name(x.data_type)}, not int8")
        elif dtype != TensorProto.INT8:
            errs.append(f"{n.name}: zero-point type {TensorProto.DataType.Name(dtype or 0)}, TensorRT needs int8")
        if any(zps):
            errs.append(f"{n.name}: zero-point {zps[:4]} is not 0")
        if n.op_type == "QuantizeLinear":
            s = ix.const(n.input[1])
            if s is not None and numpy_helper.to_array(s).size != 1:
                errs.append(f"{n.name}: activation scale is not per-tensor")
    return errs


def check_fp32(model: onnx.ModelProto) -> list[str]:
    """FP32 file: no Q/DQ nodes, dynamic batch axis."""
    ix = _Index(model)
    errs = [f"{n.name}: Q/DQ node in an FP32 model" for n in model.graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if not dims or not dims[0].dim_param:
        errs.append("batch axis is not dynamic")
    if ix.opset() < 13:
        errs.append(f"opset {ix.opset()} < 13")
    return errs
