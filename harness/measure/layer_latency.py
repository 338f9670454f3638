"""Measure per-layer latency tables (compression/latency_table.py) on this machine with a real runtime.

Each table entry is one single-conv probe model (compression/latency_probe.py) compiled by the backend's runtime
with the settings its latency cells use (OpenVINO: LATENCY hint, one stream, the thread count, f32 inference
hint; ONNX Runtime: intra-op threads, sequential execution), run `PROBE_RUNS` times after a warm-up; the entry is
the median over runs of the runtime's own per-node counters summed over the probe's nodes (OpenVINO PERF_COUNT
realTime: the Convolution with its fused ReLU and requantization, the input quantization and the layout reorders
around it; ONNX Runtime's profiler kernel times), so the per-call overhead of the runtime and of Python, which the
whole model pays once and not per layer, stays out of it. Counting the reorders with the layer (not only the conv
node) matters: on the tiny models of the tests they cost as much as the conv, and the whole model pays them per
layer; left out, they land in `rest_ms`, which no plan can reduce.
Whole-model probes (the dense arch and the paper's point's arch, random weights) are timed end to end (median
wall time of one call, the least of `WHOLE_ROUNDS` rounds); their latency minus their sum of parts gives the table's `rest_ms`.
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
from compression.latency_probe import CONV_NODE, arch_probe_onnx, conv_probe_onnx
from compression.latency_table import (
    LatencyTable,
    LayerCosts,
    conv_slots,
    grid_widths,
    load_table,
    save_table,
    table_path,
)
from fer.model import Arch

TABLE_BACKENDS = ("openvino", "onnxruntime")
PROBE_WARMUP = 5
PROBE_RUNS = 25
WHOLE_RUNS = 20
WHOLE_ROUNDS = 5
Progress = Callable[[str], None]


def runtime_version(backend: str) -> str:
    if backend == "openvino":
        import openvino as ov

        return str(ov.__version__)
    if backend == "onnxruntime":
        import onnxruntime as ort

        return str(ort.__version__)
    raise UserError(f"--backend {backend}: latency tables are measured on {', '.join(TABLE_BACKENDS)}")


def machine_id() -> str:
    """The CPU this table is for: brand, core count and the ISA flags that select kernels."""
    from harness.measure.fingerprint import cpu_info

    cpu = cpu_info()
    return f"{cpu['brand']} x{cpu['logical_cores']} [{' '.join(cpu['flags'])}]"


def table_key(arch: Arch, backend: str, precision: str, threads: int, group: int, levels: int,
              batch: int = 1) -> dict[str, Any]:
    return {"machine": machine_id(), "backend": backend, "runtime": runtime_version(backend), "precision": precision,
            "threads": threads, "batch": batch, "input_shape": [batch, int(arch["in_channels"]), 48, 48],
            "dense_features": list(arch["features"]), "group": group, "levels": levels}


class _Runner:
    """Compiles ONNX models on one backend with the latency cell's settings and times them."""

    def __init__(self, backend: str, threads: int) -> None:
        self.backend, self.threads = backend, threads

    def conv_ms(self, model: onnx.ModelProto, shape: list[int]) -> float:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        if self.backend == "openvino":
            return self._ov_conv_ms(model, x)
        return self._ort_conv_ms(model, x)

    def whole_ms(self, model: onnx.ModelProto, shape: list[int]) -> float:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        run = self._ov_callable(model, perf=False) if self.backend == "openvino" else self._ort_callable(model)[0]
        for _ in range(PROBE_WARMUP * 2):
            run(x)
        medians = []
        for _ in range(WHOLE_ROUNDS):  # the least of a few rounds' medians: a shared CPU only ever adds time
            times = []
            for _ in range(WHOLE_RUNS):
                t0 = time.perf_counter()
                run(x)
                times.append(time.perf_counter() - t0)
            medians.append(statistics.median(times))
        return 1000.0 * min(medians)

    # ------------------------------------------------------------ OpenVINO
    def _ov_compiled(self, model: onnx.ModelProto, perf: bool) -> Any:
        import openvino as ov

        from backends.openvino.compile import compile_cpu

        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
                                  "INFERENCE_NUM_THREADS": str(self.threads), "INFERENCE_PRECISION_HINT": "f32",
                                  "ENABLE_CPU_PINNING": "YES"}
        if perf:
            config["PERF_COUNT"] = "YES"
        blob = model.SerializeToString()
        compiled, _note = compile_cpu(core, core.read_model(blob, b""), config, lambda: core.read_model(blob, b""))
        return compiled

    def _ov_callable(self, model: onnx.ModelProto, perf: bool) -> Callable[[np.ndarray], Any]:
        request = self._ov_compiled(model, perf).create_infer_request()
        return lambda x: request.infer({0: x})

    def _ov_conv_ms(self, model: onnx.ModelProto, x: np.ndarray) -> float:
        request = self._ov_compiled(model, perf=True).create_infer_request()
        for _ in range(PROBE_WARMUP):
            request.infer({0: x})
        samples = []
        for _ in range(PROBE_RUNS):
            request.infer({0: x})
            info = request.get_profiling_info()
            if not any(p.node_type == "Convolution" and p.node_name.startswith(CONV_NODE) for p in info):
                raise RuntimeError("openvino: no Convolution node in the probe's performance counters")
            samples.append(1000.0 * sum(p.real_time.total_seconds() for p in info))
        return statistics.median(samples)

    # ------------------------------------------------------------ ONNX Runtime
    def _ort_callable(self, model: onnx.ModelProto, profile_dir: str | None = None
                      ) -> tuple[Callable[[np.ndarray], Any], Any]:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if profile_dir is not None:
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(profile_dir, "probe")
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return (lambda x: sess.run(None, {name: x})), sess

    def _ort_conv_ms(self, model: onnx.ModelProto, x: np.ndarray) -> float:
        with tempfile.TemporaryDirectory() as d:
            run, sess = self._ort_callable(model, d)
            for _ in range(PROBE_WARMUP + PROBE_RUNS):
                run(x)
            events = json.loads(Path(sess.end_profiling()).read_text(encoding="utf-8"))
        kernels = [e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")]
        if not any((e.get("args") or {}).get("op_name") in ("Conv", "QLinearConv", "FusedConv") for e in kernels):
            raise RuntimeError("onnxruntime: no conv kernel in the probe's profile")
        runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
        if len(runs) < PROBE_RUNS:
            raise RuntimeError("onnxruntime: the profile lacks the probe's runs")
        per_run = []
        for r in runs[-PROBE_RUNS:]:  # the kernels inside each run's time window
            t0, t1 = r["ts"], r["ts"] + r["dur"]
            per_run.append(sum(e["dur"] for e in kernels if t0 <= e["ts"] <= t1) / 1000.0)
        return statistics.median(per_run)


def paper_arch(dense: Arch) -> Arch:
    """The paper's point's architecture (L1, per layer, sparsity 0.5): Torch-Pruning keeps int(c * 0.5) of every
    conv and of the hidden layer (prune.n_pruned's rounding); known without training."""
    feats = [f if f == "M" else int(f) - (int(f) - int(int(f) * 0.5)) for f in dense["features"]]
    return {**dense, "features": feats, "hidden": int(dense["hidden"]) - (int(dense["hidden"])
                                                                          - int(int(dense["hidden"]) * 0.5))}


def measure_table(arch: Arch, backend: str, precision: str, threads: int, group: int, levels: int,
                  progress: Progress | None = None) -> LatencyTable:
    """Measure the table of the dense `arch` on `backend` (see the module): one probe per distinct
    (size, input, output) grid point, then the whole-model probes that calibrate `rest_ms`."""
    say = progress or (lambda _m: None)
    key = table_key(arch, backend, precision, threads, group, levels)
    runner = _Runner(backend, threads)
    seen: dict[tuple[int, int, int], float] = {}
    layers: list[LayerCosts] = []
    slots = conv_slots(arch)
    t0 = time.perf_counter()
    for slot in slots:
        ins = [slot.dense_in] if slot.index == 0 else grid_widths(slot.dense_in, group, levels)
        outs = grid_widths(slot.dense_out, group, levels)
        ms = []
        for ci in ins:
            row = []
            for co in outs:
                k = (slot.size, ci, co)
                if k not in seen:
                    seen[k] = runner.conv_ms(conv_probe_onnx(ci, co, slot.size, precision), [1, ci, slot.size,
                                                                                          slot.size])
                row.append(seen[k])
            ms.append(row)
        layers.append(LayerCosts(slot, ins, outs, ms))
        say(f"latency table: {slot.name} measured ({len(ins)}x{len(outs)} widths)")
    table = LatencyTable(key, layers)
    probes = {"dense": arch, "paper-point": paper_arch(arch)}
    rests = []
    for name, a in probes.items():
        measured = runner.whole_ms(arch_probe_onnx(a, precision), [1, int(a["in_channels"]), 48, 48])
        parts = table.parts_ms(a)
        table.probes[name] = {"arch": a, "measured_ms": measured, "parts_ms": parts}
        rests.append(measured - parts)
    table.rest_ms = max(0.0, min(rests))  # the least: load on a shared CPU only adds
    say(f"latency table: {len(seen)} probes + {len(probes)} whole-model probes in {time.perf_counter() - t0:.0f} s")
    return table


def load_or_measure(cache_dir: Path, arch: Arch, backend: str, precision: str, threads: int, group: int,
                    levels: int, progress: Progress | None = None) -> tuple[LatencyTable, Path, bool]:
    """(table, its cache file, whether it was measured now): the cached table of this key, or a fresh one."""
    say = progress or (lambda _m: None)
    if backend not in TABLE_BACKENDS:
        raise UserError(f"--backend {backend}: latency tables are measured on {', '.join(TABLE_BACKENDS)}")
    key = table_key(arch, backend, precision, threads, group, levels)
    path = table_path(cache_dir, key)
    table = load_table(path, key)
    if table is not None:
        say(f"latency table: reusing {path}")
        return table, path, False
    table = measure_table(arch, backend, precision, threads, group, levels, say)
    save_table(path, table)
    say(f"latency table: written {path}")
    return table, path, True


def measure_arch_ms(arch: Arch, backend: str, precision: str, threads: int) -> float:
    """End-to-end median latency of a random-weight model of `arch` (one call, batch 1)."""
    return _Runner(backend, threads).whole_ms(arch_probe_onnx(arch, precision), [1, int(arch["in_channels"]), 48, 48])
