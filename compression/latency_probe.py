"""ONNX probe models for latency tables: one conv layer at a given (input channels, output channels, size), and a
whole VGG16-FER of a given `arch`, with random weights in the same encoding as the real artifacts.

Why random weights: a layer's latency on a dense kernel depends on its shape and precision, not on its values, so
a table can be measured before anything is trained and reused by every model of that shape. The int8 probes use
the CPU Q/DQ encoding of `export.cpu_qdq_onnx` (uint8 activations, 7-bit symmetric per-channel weights, Q/DQ on
every conv input and after its ReLU, where the next layer's input quantization sits), so the runtime fuses them
the way it fuses the real model; the whole-model probe goes through `cpu_qdq_onnx` itself.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from compression import export
from compression.fold import FoldedLayer
from compression.quant import QuantizedLayer
from compression.storage import layer_infos
from fer.model import Arch

PROBE_INPUT = "input"
PROBE_OUTPUT = "output"
CONV_NODE = "probe.conv"  # the probe conv's node name (the runtimes' per-node counters are read by it)
_ACT_SCALE = 1.0 / 255


def _init(inits: list[onnx.TensorProto], name: str, array: np.ndarray) -> str:
    inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
    return name


def conv_probe_onnx(c_in: int, c_out: int, size: int, precision: str, seed: int = 0) -> onnx.ModelProto:
    """One 3x3 conv (pad 1) + ReLU on [1, c_in, size, size]; int8: Q/DQ on its input and weights and after the
    ReLU (as the real model's next layer quantizes it); fp32: the plain conv."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    x = PROBE_INPUT
    if precision == "int8":
        s = _init(inits, "act.scale", np.array(_ACT_SCALE, dtype=np.float32))
        z = _init(inits, "act.zp", np.array(0, dtype=np.uint8))
        nodes += [helper.make_node("QuantizeLinear", [x, s, z], ["x.q"], name="in.q"),
                  helper.make_node("DequantizeLinear", ["x.q", s, z], ["x.dq"], name="in.dq")]
        x = "x.dq"
        w_q = _init(inits, "w.q", rng.integers(-63, 64, size=(c_out, c_in, 3, 3), dtype=np.int8))
        w_s = _init(inits, "w.scale", np.full(c_out, 0.01, dtype=np.float32))
        w_z = _init(inits, "w.zp", np.zeros(c_out, dtype=np.int8))
        nodes.append(helper.make_node("DequantizeLinear", [w_q, w_s, w_z], ["w"], name="w.dq", axis=0))
        w = "w"
    elif precision == "fp32":
        w = _init(inits, "w", rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32) * 0.05)
    else:
        raise ValueError(f"unknown precision {precision!r}")
    b = _init(inits, "b", np.zeros(c_out, dtype=np.float32))
    nodes.append(helper.make_node("Conv", [x, w, b], ["y"], name=CONV_NODE, kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["y"], ["r"], name="probe.relu"))
    out = "r"
    if precision == "int8":
        nodes += [helper.make_node("QuantizeLinear", ["r", "act.scale", "act.zp"], ["r.q"], name="out.q"),
                  helper.make_node("DequantizeLinear", ["r.q", "act.scale", "act.zp"], [PROBE_OUTPUT],
                                   name="out.dq")]
    else:
        nodes.append(helper.make_node("Identity", [out], [PROBE_OUTPUT], name="out"))
    inp = helper.make_tensor_value_info(PROBE_INPUT, TensorProto.FLOAT, [1, c_in, size, size])
    outp = helper.make_tensor_value_info(PROBE_OUTPUT, TensorProto.FLOAT, [1, c_out, size, size])
    graph = helper.make_graph(nodes, "conv_probe", [inp], [outp], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", export.OPSET)], producer_name="fer-bench")
    m.ir_version = export.IR_VERSION
    onnx.checker.check_model(m)
    return m


def arch_probe_onnx(arch: Arch, precision: str, seed: int = 0) -> onnx.ModelProto:
    """The whole model of `arch` (depth as described) with random weights, exported as the artifacts are."""
    g = torch.Generator().manual_seed(seed)
    infos = layer_infos(arch)
    feats = list(arch["features"])
    pools, k = [], 0
    for j, item in enumerate(feats):
        if item != "M":
            pools.append(j + 1 < len(feats) and feats[j + 1] == "M")
            k += 1
    if precision == "fp32":
        folded = []
        for i, li in enumerate(infos):
            shape = (li.out_channels, li.in_channels, 3, 3) if li.kind == "conv" else (li.out_channels,
                                                                                       li.in_channels)
            folded.append(FoldedLayer(li.name, li.kind, torch.randn(shape, generator=g) * 0.05,
                                      torch.zeros(li.out_channels), relu=i < len(infos) - 1,
                                      pool_after=pools[i] if li.kind == "conv" else False))
        return export.fp32_onnx(folded, int(arch["in_channels"]))
    if precision != "int8":
        raise ValueError(f"unknown precision {precision!r}")
    layers = []
    for i, li in enumerate(infos):
        shape = (li.out_channels, li.in_channels, 3, 3) if li.kind == "conv" else (li.out_channels, li.in_channels)
        layers.append(QuantizedLayer(
            li.name, li.kind, torch.randint(-63, 64, shape, generator=g, dtype=torch.int8),
            torch.full((li.out_channels,), 0.01), torch.zeros(li.out_channels, dtype=torch.int8),
            torch.zeros(li.out_channels), act_scale=_ACT_SCALE, act_zero_point=0, act_max=1.0,
            relu=i < len(infos) - 1, pool_after=pools[i] if li.kind == "conv" else False, weight_error=0.0))
    return export.cpu_qdq_onnx(layers, int(arch["in_channels"]))
