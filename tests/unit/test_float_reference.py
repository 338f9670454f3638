"""The float twin of an integer graph computes the same quantized model with float kernels: its outputs match
ONNX Runtime's integer kernels to one quantization step, and it holds no integer operator any more."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.measure.float_reference import float_twin

ort = pytest.importorskip("onnxruntime")


def _integer_graph(per_channel: bool, integer_op: str = "") -> onnx.ModelProto:
    """x (float [1, 3, 8, 8]) -> Quantize -> QLinearConv (4 filters, int32 bias) -> Dequantize -> Flatten ->
    Quantize -> QLinearMatMul ([256, 5]) -> Dequantize -> y."""
    rng = np.random.default_rng(0)
    w = rng.integers(-60, 60, (4, 3, 3, 3), dtype=np.int8)
    ws = (rng.random(4, dtype=np.float32) * 0.01 + 0.005) if per_channel else np.float32(0.01)
    m = rng.integers(-60, 60, (256, 5), dtype=np.int8)
    ms = (rng.random(5, dtype=np.float32) * 0.01 + 0.005) if per_channel else np.float32(0.008)
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in [
        ("xs", np.float32(1 / 255)), ("xz", np.uint8(0)), ("w", w), ("ws", np.asarray(ws, np.float32)),
        ("wz", np.zeros(4, np.int8) if per_channel else np.int8(0)),
        ("b", rng.integers(-500, 500, 4, dtype=np.int32)), ("ys", np.float32(0.05)), ("yz", np.uint8(10)),
        ("m", m), ("ms", np.asarray(ms, np.float32)), ("mz", np.zeros(5, np.int8) if per_channel else np.int8(0)),
        ("zs", np.float32(0.1)), ("zz", np.uint8(128))]]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("QLinearConv", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["yq"],
                              pads=[1, 1, 1, 1]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"]),
             helper.make_node("Flatten", ["y"], ["f"]),
             helper.make_node("QuantizeLinear", ["f", "ys", "yz"], ["fq"]),
             helper.make_node("QLinearMatMul", ["fq", "ys", "yz", "m", "ms", "mz", "zs", "zz"], ["zq"]),
             helper.make_node("DequantizeLinear", ["zq", "zs", "zz"], ["out"])]
    if integer_op:
        nodes.append(helper.make_node(integer_op, ["xq", "w"], ["unused"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(["out"], {"x": x})[0])


@pytest.mark.parametrize("per_channel", [False, True])
def test_the_twin_matches_the_integer_kernels_to_one_step(per_channel: bool) -> None:
    model = _integer_graph(per_channel)
    twin = float_twin(model)
    assert twin is not None
    ops = {n.op_type for n in twin.graph.node}
    assert not ops & {"QLinearConv", "QLinearMatMul"} and {"Conv", "MatMul", "DequantizeLinear"} <= ops
    worst = 0.0
    for seed in range(20):
        x = np.random.default_rng(seed).random((1, 3, 8, 8), dtype=np.float32)
        worst = max(worst, float(np.max(np.abs(_run(twin, x) - _run(model, x)))))
    assert worst <= 0.1 + 1e-6  # at most one step of the output's scale (0.1): rounding ties, never more
    assert float_twin(twin) is None  # nothing integer left to rewrite


def test_no_twin_where_it_cannot_be_exact() -> None:
    assert float_twin(_integer_graph(False, "ConvInteger")) is None


def test_an_imported_integer_graph_gets_a_float_twin_reference(tmp_path) -> None:
    """`bench import` of an integer graph: the agreement reference is its float twin, in a verified artifact
    directory of its own, and is named as such (not "fp32 graph", not the integer graph itself)."""
    from backends.artifact import ONNX_FILE, load_artifact
    from compression.onnx_import import import_onnx
    from harness.measure.agreement import _reference_name, float_twin_artifact, graph_arithmetic

    src = tmp_path / "qop.onnx"
    onnx.save(_integer_graph(True), str(src))
    art = import_onnx(src, tmp_path / "imported")
    assert graph_arithmetic(art) == "int8"
    twin_dir = float_twin_artifact(art)
    assert twin_dir is not None
    twin = load_artifact(twin_dir)  # sizes and sha256s of the twin's own manifest check out
    ops = {n.op_type for n in onnx.load(str(twin.file(ONNX_FILE))).graph.node}
    assert "QLinearConv" not in ops and "Conv" in ops
    assert "float twin of the integer graph" in _reference_name("onnxruntime", "", "twin")
    onnx.save(_integer_graph(False, "ConvInteger"), str(tmp_path / "ci.onnx"))
    assert float_twin_artifact(import_onnx(tmp_path / "ci.onnx", tmp_path / "imported-ci")) is None
