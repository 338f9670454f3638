"""Time ONNX probe models with a runtime's own per-node counters, for per-layer latency tables
(compression/latency_table.py; the probes come from compression/latency_probe.py and the table is assembled in
harness/orchestrate/latency_table.py, since this room may not import compression).

A probe is compiled with the settings the backend's latency cells use (OpenVINO: LATENCY hint, one stream, the
thread count, f32 inference hint, pinning; ONNX Runtime: intra-op threads, sequential execution), warmed up, then
run `runs` times. Each run gives (wall time of the call, the sum of the runtime's per-node counters: OpenVINO
PERF_COUNT realTime from `request.get_profiling_info()`, ONNX Runtime's profiler kernel times inside that run).

* A layer probe's cost is the least of three rounds' medians of the node sums: the conv with its fused ReLU and
  requantization, the input quantization and the layout reorders around it. Counting the reorders with the layer
  matters: on the tiny models of the tests they cost as much as the conv, and the whole model pays them per
  layer. The per-call overhead (runtime and Python), which the whole model pays once, stays out.
* A whole-model probe's latency is the least round median of the node sums plus the least (wall - node sum) over
  the runs: the per-call overhead as it is when nothing else runs. On a shared CPU both only grow with load; the
  least is robust to it where a median of wall times is not (seen here: a whole probe's median wall time moved
  0.5 -> 2.9 ms between two runs minutes apart).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from common.errors import UserError

TABLE_BACKENDS = ("openvino", "onnxruntime")
PROBE_WARMUP = 5
PROBE_RUNS = 10  # per round
PROBE_ROUNDS = 3
WHOLE_RUNS = 60
CONV_TYPES = ("Conv", "QLinearConv", "FusedConv")  # ONNX Runtime's op names of a conv kernel


def runtime_version(backend: str) -> str:
    if backend == "openvino":
        import openvino as ov

        return str(ov.__version__)
    if backend == "onnxruntime":
        import onnxruntime as ort

        return str(ort.__version__)
    raise UserError(f"--backend {backend}: latency tables are measured on {', '.join(TABLE_BACKENDS)}")


def machine_id() -> str:
    """The CPU a table is for: brand, core count and the ISA flags that select kernels."""
    from harness.measure.fingerprint import cpu_info

    cpu = cpu_info()
    return f"{cpu['brand']} x{cpu['logical_cores']} [{' '.join(cpu['flags'])}]"


class ProbeTimer:
    """Compiles ONNX probes on one backend with the latency cell's settings and times them (see the module)."""

    def __init__(self, backend: str, threads: int) -> None:
        if backend not in TABLE_BACKENDS:
            raise UserError(f"--backend {backend}: latency tables are measured on {', '.join(TABLE_BACKENDS)}")
        self.backend, self.threads = backend, threads

    def layer_ms(self, model: onnx.ModelProto, shape: list[int]) -> float:
        """The per-run sum of the probe's node counters, in ms: the least of `PROBE_ROUNDS` consecutive rounds'
        medians, so that a burst of load from other processes (a shared CPU) does not become a table entry."""
        runs = [n for _w, n in self.runs(model, shape, PROBE_RUNS * PROBE_ROUNDS)]
        return min(statistics.median(runs[r * PROBE_RUNS:(r + 1) * PROBE_RUNS]) for r in range(PROBE_ROUNDS))

    def whole_ms(self, model: onnx.ModelProto, shape: list[int]) -> float:
        """The least round median of the node sums + the least per-call overhead, in ms."""
        runs = self.runs(model, shape, WHOLE_RUNS)
        per = WHOLE_RUNS // PROBE_ROUNDS
        nodes = min(statistics.median(n for _w, n in runs[r * per:(r + 1) * per]) for r in range(PROBE_ROUNDS))
        return nodes + max(0.0, min(w - n for w, n in runs))

    def runs(self, model: onnx.ModelProto, shape: list[int], n: int) -> list[tuple[float, float]]:
        """(wall ms, node-counter sum ms) of each of `n` runs after the warm-up."""
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        return self._ov_runs(model, x, n) if self.backend == "openvino" else self._ort_runs(model, x, n)

    def _ov_runs(self, model: onnx.ModelProto, x: np.ndarray, n: int) -> list[tuple[float, float]]:
        import openvino as ov

        from backends.openvino.compile import compile_cpu

        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
                                  "INFERENCE_NUM_THREADS": str(self.threads), "INFERENCE_PRECISION_HINT": "f32",
                                  "ENABLE_CPU_PINNING": "YES", "PERF_COUNT": "YES"}
        blob = model.SerializeToString()
        compiled, _note = compile_cpu(core, core.read_model(blob, b""), config, lambda: core.read_model(blob, b""))
        request = compiled.create_infer_request()
        for _ in range(PROBE_WARMUP):
            request.infer({0: x})
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            request.infer({0: x})
            wall = time.perf_counter() - t0
            info = request.get_profiling_info()
            if not any(p.node_type == "Convolution" for p in info):
                raise RuntimeError("openvino: no Convolution node in the probe's performance counters")
            out.append((1000.0 * wall, 1000.0 * sum(p.real_time.total_seconds() for p in info)))
        return out

    def _ort_runs(self, model: onnx.ModelProto, x: np.ndarray, n: int) -> list[tuple[float, float]]:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as d:
            so = ort.SessionOptions()
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(d, "probe")
            sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
            name = sess.get_inputs()[0].name
            run: Callable[[], Any] = lambda: sess.run(None, {name: x})  # noqa: E731
            for _ in range(PROBE_WARMUP):
                run()
            walls = []
            for _ in range(n):
                t0 = time.perf_counter()
                run()
                walls.append(1000.0 * (time.perf_counter() - t0))
            events = json.loads(Path(sess.end_profiling()).read_text(encoding="utf-8"))
        kernels = [e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")]
        if not any((e.get("args") or {}).get("op_name") in CONV_TYPES for e in kernels):
            raise RuntimeError("onnxruntime: no conv kernel in the probe's profile")
        spans = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"][-n:]
        if len(spans) < n:
            raise RuntimeError("onnxruntime: the profile lacks the probe's runs")
        nodes = [sum(e["dur"] for e in kernels if s["ts"] <= e["ts"] <= s["ts"] + s["dur"]) / 1000.0 for s in spans]
        return list(zip(walls, nodes, strict=True))
