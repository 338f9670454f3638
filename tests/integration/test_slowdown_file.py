"""The file-built slowdown (compression.slowdown) used to measure the gate's detection: it must keep every
prediction of the original graph (so a slowed variant still agrees) while adding the stated work, on the real
runtimes the gate measures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from compression.slowdown import add_slowdown
from fer.model import build_model, default_arch


def _export(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model(default_arch(in_channels=1, width=0.0625)).eval()
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (torch.rand(1, 1, 48, 48),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def test_slowed_graph_keeps_logits_and_adds_the_work(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    src = _export(tmp_path)
    dst = tmp_path / "slow.onnx"
    added = add_slowdown(src, dst, extra_mmacs=1.0)
    assert 0.9e6 <= added <= 1.1e6  # whole 256-wide steps: within 10% of the asked work
    slow = onnx.load(str(dst))
    matmuls = [n for n in slow.graph.node if n.op_type == "MatMul"]
    assert len(matmuls) >= 2 and slow.graph.output[0].name == "logits"
    x = np.random.default_rng(1).random((4, 1, 48, 48), dtype=np.float32)
    a = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    b = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_openvino_runs_the_slowed_graph_with_the_same_logits(tmp_path: Path) -> None:
    ov = pytest.importorskip("openvino")
    src = _export(tmp_path)
    dst = tmp_path / "slow.onnx"
    add_slowdown(src, dst, extra_mmacs=0.5)
    core = ov.Core()
    x = np.random.default_rng(2).random((2, 1, 48, 48), dtype=np.float32)
    outs = []
    for p in (src, dst):
        compiled = core.compile_model(core.read_model(str(p)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        outs.append(np.asarray(compiled(x)[0]))
        ops = [op.get_rt_info()["layerType"].astype(str) for op in compiled.get_runtime_model().get_ops()]
        if p == dst:  # the added work survived OpenVINO's graph optimisations (not folded away as x * 0)
            assert any("FullyConnected" in t or "MatMul" in t for t in ops), ops
    np.testing.assert_allclose(outs[0], outs[1], rtol=0, atol=1e-5)
