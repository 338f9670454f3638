"""What a model moves per inference: multiply-accumulates, weight elements and activation elements of its
compute layers, read from the artifact's ONNX graph (shape inference at batch 1), for the roofline's x axis.

A row's bytes at batch B and precision p are weights x bytes(p) (read once per batch; biases at 4 bytes) plus
B x activations x bytes(p), where activations count each conv/FC layer's input and output once (written by one
layer, read by the next); its arithmetic intensity is B x MACs over those bytes. This is the compulsory traffic
of the layers, not a cache simulation: a runtime that fuses layers moves no less.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# op type -> (index of the data input, index of the weight input, index of the bias input or -1)
COMPUTE_OPS = {
    "Conv": (0, 1, 2), "ConvInteger": (0, 1, -1), "QLinearConv": (0, 3, 8),
    "Gemm": (0, 1, 2), "MatMul": (0, 1, -1), "MatMulInteger": (0, 1, -1), "QLinearMatMul": (0, 3, -1),
}
BYTES = {"int8": 1, "fp16": 2, "bf16": 2, "fp32": 4, "tf32": 4}


@dataclass(frozen=True)
class Traffic:
    """Per image at batch 1: MACs, weight and bias elements, activation elements of the conv/FC layers."""

    macs: int
    weights: int
    biases: int
    activations: int
    layers: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def bytes_moved(self, precision: str, batch: int) -> float:
        """Bytes of one batch: weights once at the precision (biases at 4 bytes) + activations per image."""
        b = BYTES.get(precision, 4)
        return self.weights * b + self.biases * 4 + batch * self.activations * b

    def intensity(self, precision: str, batch: int) -> float:
        """MACs per byte moved at `precision` and `batch`."""
        return batch * self.macs / self.bytes_moved(precision, batch)


def _dims(value_info: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def _numel(shape: Sequence[int | None] | None) -> int | None:
    dims = [d for d in shape or [] if isinstance(d, int) and d > 0]
    if not shape or len(dims) != len(shape):
        return None
    return int(np.prod(dims))


def model_traffic(onnx_path: str | Path) -> Traffic | None:
    """The Traffic of a model file; None when it cannot be read or has no compute layer with known shapes."""
    import onnx
    from onnx import numpy_helper, shape_inference

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception:
        return None
    g = model.graph
    inits = {i.name: tuple(i.dims) for i in g.initializer}
    consts = {n.output[0]: tuple(numpy_helper.to_array(a.t).shape) for n in g.node if n.op_type == "Constant"
              for a in n.attribute if a.name == "value"}
    inits.update(consts)
    for inp in g.input:
        if inp.name not in inits and inp.type.tensor_type.shape.dim:
            inp.type.tensor_type.shape.dim[0].dim_value = 1
    try:
        inferred = shape_inference.infer_shapes(model).graph
    except Exception:
        return None
    shapes: dict[str, list[int | None]] = {v.name: _dims(v) for v in [*inferred.value_info, *inferred.output,
                                                                          *inferred.input]}
    for name, dims in inits.items():
        shapes.setdefault(name, list(dims))
    # a weight reaches a float Conv/Gemm through DequantizeLinear (Q/DQ graphs) or Transpose/Reshape
    source = {n.output[0]: n.input[0] for n in g.node
              if n.op_type in ("DequantizeLinear", "Identity", "Cast") and n.input}
    macs = weights = biases = acts = layers = 0
    for n in g.node:
        idx = COMPUTE_OPS.get(n.op_type)
        if idx is None or len(n.input) <= idx[1]:
            continue
        w_name = n.input[idx[1]]
        while w_name in source and w_name not in inits:
            w_name = source[w_name]
        w_shape = [int(d or 0) for d in shapes.get(w_name) or []] if w_name in inits else None
        out_n = _numel(shapes.get(n.output[0]))
        in_n = _numel(shapes.get(n.input[idx[0]]))
        w_n = _numel(w_shape)
        if w_shape is None or out_n is None or in_n is None or w_n is None:
            continue  # not a layer with constant weights (e.g. an activation x activation MatMul)
        if "Conv" in n.op_type:
            macs += out_n * w_n // int(w_shape[0])  # each output: Cin/group x kH x kW multiply-accumulates
        else:
            trans_b = any(a.name == "transB" and a.i == 1 for a in n.attribute)
            k = int(w_shape[1] if (n.op_type == "Gemm" and trans_b) else w_shape[0])
            macs += out_n * k
        weights += w_n
        if idx[2] >= 0 and len(n.input) > idx[2] and n.input[idx[2]]:
            b_name = n.input[idx[2]]
            while b_name in source and b_name not in inits:
                b_name = source[b_name]
            biases += _numel(shapes.get(b_name)) or 0
        acts += in_n + out_n
        layers += 1
    if not layers:
        return None
    return Traffic(macs=macs, weights=weights, biases=biases, activations=acts, layers=layers)
