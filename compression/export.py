"""ONNX export, built node by node with onnx.helper from the BN-folded weights and learned scales.

Building the graph directly (rather than tracing fake-quant modules through torch.onnx) keeps every
Q/DQ node, dtype, zero-point and axis under our control; the exporter's behaviour does not enter.
Graph input "input" [batch, C, 48, 48] float (batch is a dynamic dim_param), output "logits" [batch, 7].
Opset 17, IR version 8. Node and initializer names start with the layer's name (e.g. "features.0").

  fp32  Conv(+bias) -> Relu [-> MaxPool] ... Flatten -> Gemm -> Relu -> Gemm (BN folded into the convs).
  cpu   (model.onnx of int8 variants) uint8 activations with zero-point 0, Q/DQ on the inputs AND the
        outputs of every Conv/Gemm (so ONNX Runtime fuses QLinearConv and OpenVINO runs u8 kernels):
        Q(u8) -> DQ -> Conv(DQ(int8 W, per-channel axis 0), DQ(int32 bias, scale s_in * s_w)) -> Relu
        -> Q(u8, next scale) -> DQ [-> MaxPool [-> Flatten] -> Q -> DQ] -> next Conv/Gemm.
  trt   (model.trt.onnx) TensorRT explicit quantization: int8 activations (scale alpha / 127, zero-point
        0), Q/DQ on the inputs of every Conv/Gemm only, int8 per-channel weights (axis 0) + DQ, float bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from compression.fold import FoldedLayer
from compression.quant import QuantizedLayer

OPSET = 17
IR_VERSION = 8
INPUT = "input"
OUTPUT = "logits"
TRT_ACT_QMAX = 127


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, name: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=name, **attrs))
        return output

    def qdq(self, x: str, scale: float, zp: int, dtype: type, tag: str) -> str:
        """Quantize then dequantize a tensor per-tensor with constant scale / zero-point."""
        s = self.init(f"{tag}.scale", np.array(scale, dtype=np.float32))
        z = self.init(f"{tag}.zero_point", np.array(zp, dtype=dtype))
        q = self.node("QuantizeLinear", [x, s, z], f"{tag}.q", f"{tag}/QuantizeLinear")
        return self.node("DequantizeLinear", [q, s, z], f"{tag}.dq", f"{tag}/DequantizeLinear")

    def model(self, in_channels: int, num_classes: int, doc: str) -> onnx.ModelProto:
        inp = helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", in_channels, 48, 48])
        out = helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", num_classes])
        graph = helper.make_graph(self.nodes, "vgg16_fer", [inp], [out], initializer=self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fer-bench")
        m.ir_version = IR_VERSION
        m.doc_string = doc
        onnx.checker.check_model(m)
        return m


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _layer_op(g: _Graph, kind: str, name: str, x: str, w: str, b: str, out: str) -> str:
    if kind == "conv":
        return g.node("Conv", [x, w, b], out, f"{name}/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    return g.node("Gemm", [x, w, b], out, f"{name}/Gemm", transB=1)


def fp32_onnx(layers: list[FoldedLayer], in_channels: int) -> onnx.ModelProto:
    """The FP32 graph of a BN-folded model."""
    g = _Graph()
    x = INPUT
    for i, fl in enumerate(layers):
        if fl.kind == "linear" and i > 0 and layers[i - 1].kind == "conv":
            x = g.node("Flatten", [x], f"{fl.name}.flat", f"{fl.name}/Flatten", axis=1)
        w = g.init(f"{fl.name}.weight", _np(fl.weight).astype(np.float32))
        b = g.init(f"{fl.name}.bias", _np(fl.bias).astype(np.float32))
        out = OUTPUT if i == len(layers) - 1 else f"{fl.name}.out"
        x = _layer_op(g, fl.kind, fl.name, x, w, b, out)
        if fl.relu:
            x = g.node("Relu", [x], f"{fl.name}.relu", f"{fl.name}/Relu")
        if fl.pool_after:
            x = g.node("MaxPool", [x], f"{fl.name}.pool", f"{fl.name}/MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    return g.model(in_channels, int(layers[-1].weight.shape[0]), "fer-bench fp32 (BN folded)")


def _weight_dq(g: _Graph, ql: QuantizedLayer) -> str:
    w = g.init(f"{ql.name}.weight_quantized", _np(ql.w_int8).astype(np.int8))
    s = g.init(f"{ql.name}.weight_scale", _np(ql.w_scale).astype(np.float32))
    z = g.init(f"{ql.name}.weight_zero_point", _np(ql.w_zero_point).astype(np.int8))
    return g.node("DequantizeLinear", [w, s, z], f"{ql.name}.weight", f"{ql.name}/weight/DequantizeLinear", axis=0)


def cpu_qdq_onnx(layers: list[QuantizedLayer], in_channels: int) -> onnx.ModelProto:
    """The CPU encoding: uint8 activations (zp 0 when symmetric), Q/DQ around every Conv/Gemm."""
    g = _Graph()
    x = g.qdq(INPUT, layers[0].act_scale, layers[0].act_zero_point, np.uint8, f"{layers[0].name}.input")
    for i, ql in enumerate(layers):
        last = i == len(layers) - 1
        w = _weight_dq(g, ql)
        bias_scale = (ql.w_scale.double() * ql.act_scale).numpy()
        b_int = np.clip(np.round(_np(ql.bias).astype(np.float64) / bias_scale), -(2**31), 2**31 - 1).astype(np.int32)
        bq = g.init(f"{ql.name}.bias_quantized", b_int)
        bs = g.init(f"{ql.name}.bias_scale", bias_scale.astype(np.float32))
        bz = g.init(f"{ql.name}.bias_zero_point", np.zeros(len(b_int), dtype=np.int32))
        b = g.node("DequantizeLinear", [bq, bs, bz], f"{ql.name}.bias", f"{ql.name}/bias/DequantizeLinear", axis=0)
        x = _layer_op(g, ql.kind, ql.name, x, w, b, OUTPUT if last else f"{ql.name}.out")
        if last:
            break
        nxt = layers[i + 1]
        if ql.relu:
            x = g.node("Relu", [x], f"{ql.name}.relu", f"{ql.name}/Relu")
        x = g.qdq(x, nxt.act_scale, nxt.act_zero_point, np.uint8, f"{ql.name}.output")
        reshaped = False
        if ql.pool_after:
            x = g.node("MaxPool", [x], f"{ql.name}.pool", f"{ql.name}/MaxPool", kernel_shape=[2, 2], strides=[2, 2])
            reshaped = True
        if nxt.kind == "linear" and ql.kind == "conv":
            x = g.node("Flatten", [x], f"{nxt.name}.flat", f"{nxt.name}/Flatten", axis=1)
            reshaped = True
        if reshaped:
            x = g.qdq(x, nxt.act_scale, nxt.act_zero_point, np.uint8, f"{nxt.name}.input")
    return g.model(in_channels, int(layers[-1].w_int8.shape[0]), "fer-bench int8, CPU QDQ encoding (uint8 act)")


def trt_qdq_onnx(layers: list[QuantizedLayer], in_channels: int) -> onnx.ModelProto:
    """The TensorRT encoding: int8 activations, zero-point 0, Q/DQ on Conv/Gemm inputs only."""
    if any(ql.act_zero_point != 0 or bool(ql.w_zero_point.any()) for ql in layers):
        raise ValueError("the TensorRT encoding needs symmetric quantization (zero-point 0)")
    g = _Graph()
    x = INPUT
    for i, ql in enumerate(layers):
        last = i == len(layers) - 1
        if ql.kind == "linear" and i > 0 and layers[i - 1].kind == "conv":
            x = g.node("Flatten", [x], f"{ql.name}.flat", f"{ql.name}/Flatten", axis=1)
        x = g.qdq(x, ql.act_max / TRT_ACT_QMAX, 0, np.int8, f"{ql.name}.input")
        w = _weight_dq(g, ql)
        b = g.init(f"{ql.name}.bias", _np(ql.bias).astype(np.float32))
        x = _layer_op(g, ql.kind, ql.name, x, w, b, OUTPUT if last else f"{ql.name}.out")
        if ql.relu:
            x = g.node("Relu", [x], f"{ql.name}.relu", f"{ql.name}/Relu")
        if ql.pool_after:
            x = g.node("MaxPool", [x], f"{ql.name}.pool", f"{ql.name}/MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    return g.model(in_channels, int(layers[-1].w_int8.shape[0]), "fer-bench int8, TensorRT QDQ encoding (int8 act)")
