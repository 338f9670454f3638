"""A float reference for an imported graph of integer operators: each QLinearConv / QLinearMatMul rewritten as
DequantizeLinear -> Conv / MatMul in float -> QuantizeLinear.

Why: ONNX Runtime runs QLinearConv with integer kernels even with every graph optimization off, so checking an
imported integer graph against "its own graph on ONNX Runtime" checks ONNX Runtime against itself. The rewritten
graph (its "float twin") computes the same quantized model with float arithmetic and explicit rounding, the way a
Q/DQ graph is the float reference of our own int8 variants. Where the twin cannot be made exactly (ConvInteger,
MatMulInteger, a scale that is not a constant, per-channel scales below opset 13), `float_twin` returns None and
the reference stays the integer graph, named so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

REWRITTEN = ("QLinearConv", "QLinearMatMul")
NOT_REWRITTEN = ("ConvInteger", "MatMulInteger")


def _scale_axis(inits: dict[str, np.ndarray], name: str, axis: int) -> dict[str, Any] | None:
    """{"axis": axis} for a per-channel scale, {} for a per-tensor one, None when the scale is not a constant."""
    arr = inits.get(name)
    if arr is None:
        return None
    return {"axis": axis} if arr.ndim == 1 and arr.size > 1 else {}


def float_twin(model: Any) -> Any | None:
    """A copy of `model` (onnx.ModelProto) with every QLinearConv / QLinearMatMul in float between Q/DQ; None when
    the graph holds an integer operator that cannot be rewritten exactly, or holds none at all."""
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    ops = [n.op_type for n in g.node]
    if any(op in NOT_REWRITTEN for op in ops) or not any(op in REWRITTEN for op in ops):
        return None
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    nodes = []
    for k, n in enumerate(g.node):
        if n.op_type not in REWRITTEN or n.domain not in ("", "ai.onnx"):
            nodes.append(n)
            continue
        p = f"__float_twin_{k}"
        if n.op_type == "QLinearConv":
            x, xs, xz, w, ws, wz, ys, yz = n.input[:8]
            bias = n.input[8] if len(n.input) > 8 and n.input[8] else ""
            w_axis = _scale_axis(inits, ws, 0)
            op, kw = "Conv", {a.name: helper.get_attribute_value(a) for a in n.attribute}
        else:
            x, xs, xz, w, ws, wz, ys, yz = n.input[:8]
            bias = ""
            w_axis = _scale_axis(inits, ws, 1)
            op, kw = "MatMul", {}
        if w_axis is None or (w_axis and opset < 13):
            return None
        nodes.append(helper.make_node("DequantizeLinear", [x, xs, xz], [f"{p}_x"]))
        nodes.append(helper.make_node("DequantizeLinear", [w, ws, wz], [f"{p}_w"], **w_axis))
        inputs = [f"{p}_x", f"{p}_w"]
        if bias:  # int32 bias at scale x_scale * w_scale, zero point 0
            nodes.append(helper.make_node("Mul", [xs, ws], [f"{p}_bs"]))
            nodes.append(helper.make_node("DequantizeLinear", [bias, f"{p}_bs"], [f"{p}_b"], **w_axis))
            inputs.append(f"{p}_b")
        nodes.append(helper.make_node(op, inputs, [f"{p}_y"], **kw))
        nodes.append(helper.make_node("QuantizeLinear", [f"{p}_y", ys, yz], list(n.output[:1])))
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    del twin.graph.node[:]
    twin.graph.node.extend(nodes)
    onnx.checker.check_model(twin)
    return twin
