"""A real slowdown as a file: the same ONNX graph plus input-dependent fp32 MatMul work whose result is multiplied
by zero and added to the logits, so predictions are unchanged and every runtime must still do the work.

Why a file and not a scaled number: the gate's detection figures must come from what a real regression looks like on
the machine (the same modes, phases and per-call floor), not from multiplying stored latencies by a factor. The
command-line tool is benchmarks/slowdown.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def add_slowdown(src: Path, dst: Path, extra_mmacs: float, seed: int = 0) -> int:
    """Write `dst`: `src` plus about `extra_mmacs` million MACs per image; returns the MACs added per image."""
    model = onnx.load(str(src))
    g = model.graph
    if len(g.input) != 1 or len(g.output) != 1:
        raise ValueError(f"{src}: expected one input and one output, found {len(g.input)} and {len(g.output)}")
    inp, out = g.input[0].name, g.output[0].name
    dims = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim[1:]]
    features = int(np.prod(dims)) if dims and all(d > 0 for d in dims) else 2304
    target = extra_mmacs * 1e6
    width = 256
    if target <= features * width:  # a single projection of the input carries it all
        width, steps = max(1, round(target / features)), 0
    else:
        steps = max(0, round((target - features * width) / (width * width)))
    rng = np.random.default_rng(seed)
    renamed = out + "_before_slowdown"
    for node in g.node:
        node.output[:] = [renamed if o == out else o for o in node.output]
    nodes = [helper.make_node("Flatten", [inp], ["sd_flat"], axis=1)]
    inits = [numpy_helper.from_array((rng.standard_normal((features, width)) * 0.01).astype(np.float32), "sd_w0")]
    nodes.append(helper.make_node("MatMul", ["sd_flat", "sd_w0"], ["sd_h0"]))
    for i in range(steps):
        w = (rng.standard_normal((width, width)) * (1.0 / width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"sd_w{i + 1}"))
        nodes.append(helper.make_node("MatMul", [f"sd_h{i}", f"sd_w{i + 1}"], [f"sd_h{i + 1}"]))
    inits.append(numpy_helper.from_array(np.zeros((1,), np.float32), "sd_zero"))
    nodes += [helper.make_node("ReduceSum", [f"sd_h{steps}"], ["sd_sum"], keepdims=1),
              helper.make_node("Mul", ["sd_sum", "sd_zero"], ["sd_nothing"]),
              helper.make_node("Add", [renamed, "sd_nothing"], [out])]
    g.node.extend(nodes)
    g.initializer.extend(inits)
    if not any(o.domain in ("", "ai.onnx") and o.version >= 13 for o in model.opset_import):
        raise ValueError(f"{src}: needs opset >= 13 (ReduceSum with keepdims as attribute)")
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return features * width + steps * width * width
