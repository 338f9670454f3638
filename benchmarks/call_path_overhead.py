"""What our OpenVINO `infer` costs beyond the runtime's bare `request.infer()`, per call, in µs.

A tiny model (global average pool + 7-way Gemm: ~20 µs per call) makes the Python call path the visible part.
Four paths interleaved in blocks of 300 calls, each block summarised by its 10th percentile (the calls the
machine let run) and each path by the median over blocks: our backend's `infer` and the bare `infer()` of its
request, and, for comparison, the naive path (a new shared Tensor per call, the logits copied out) and its bare
request. Not part of `make test`:

  python benchmarks/call_path_overhead.py [--blocks 60]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def tiny_artifact(d: Path) -> Path:
    """An fp32 artifact directory whose model is input [N,1,48,48] -> GlobalAveragePool -> Flatten -> Gemm(7)."""
    from onnx import TensorProto, helper, numpy_helper, save

    from backends.artifact import sha256_file

    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 48, 48])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 7])],
                              [numpy_helper.from_array(np.ones((7, 1), np.float32), "w")])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(d / "model.onnx"))
    f = d / "model.onnx"
    manifest = {"schema_version": 1, "variant": "tiny-fp32", "method": "tiny", "method_label": "tiny", "sparsity": 0,
                "precision": "fp32", "params": 7, "nonzero_params": 7, "storage_bytes": 28, "storage_mb": 0.0,
                "compression_ratio": 1.0, "gmac": 0.0, "val_accuracy": 0.0, "test_accuracy": 0.0,
                "config_hash": "-", "dataset": "-", "synthetic": True, "versions": {}, "input_shape": [1, 48, 48],
                "files": {"model.onnx": {"bytes": f.stat().st_size, "sha256": sha256_file(f)}}}
    (d / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return d


def measure(blocks: int) -> dict[str, Any]:
    import openvino as ov

    from backends.artifact import load_artifact
    from backends.base import BackendOptions, check_batch
    from backends.registry import get_backend_class

    with tempfile.TemporaryDirectory(prefix="call-path-") as tmp:
        art = tiny_artifact(Path(tmp))
        x = np.random.default_rng(0).random((1, 1, 48, 48), dtype=np.float32)
        backend = get_backend_class("openvino")()
        backend.load(load_artifact(art), BackendOptions(threads=1))
        backend.infer(x)
        request = backend._request  # holds the tensors our infer bound
        core = ov.Core()
        model = core.read_model(str(art / "model.onnx"))
        model.reshape([1, 1, 48, 48])
        naive_request = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": "1", "NUM_STREAMS": "1",
                                                          "PERFORMANCE_HINT": "LATENCY"}).create_infer_request()

        def naive() -> Any:
            check_batch(x, [1, 48, 48])
            naive_request.set_input_tensor(ov.Tensor(np.ascontiguousarray(x), shared_memory=True))
            naive_request.infer()
            return np.array(naive_request.get_output_tensor(0).data, dtype=np.float32, copy=True)

        paths: dict[str, Callable[[], Any]] = {"ours": lambda: backend.infer(x), "bare": request.infer,
                                               "naive": naive, "naive_bare": naive_request.infer}
        naive()
        p10: dict[str, list[float]] = {k: [] for k in paths}
        for b in range(blocks):
            for name in (list(paths) if b % 2 else list(reversed(paths))):
                fn, s = paths[name], []
                for _ in range(300):
                    t = time.perf_counter_ns()
                    fn()
                    s.append(time.perf_counter_ns() - t)
                p10[name].append(float(np.percentile(s, 10)) / 1e3)
        backend.close()
    us = {k: float(np.median(v)) for k, v in p10.items()}
    return {"p10_us_median_over_blocks": us, "ours_beyond_bare_us": us["ours"] - us["bare"],
            "naive_beyond_bare_us": us["naive"] - us["naive_bare"], "blocks": blocks}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--blocks", type=int, default=60)
    print(json.dumps(measure(p.parse_args(argv).blocks)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
