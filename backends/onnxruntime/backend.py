"""ONNX Runtime: the artifact's model.onnx on the CPU execution provider (CUDA/TensorRT providers when
onnxruntime-gpu is installed and `backends.onnxruntime.provider` asks for them).

Threads are fixed (intra-op = benchmark.threads, inter-op = 1, sequential execution); `spinning` and `pinning`
set the workers' spin-wait and CPU affinity, and the row's describe says both. ONNX Runtime falls
back to the CPU provider silently, so `load` checks `session.get_providers()` and refuses a session that
does not run on the provider asked for. `int8_layers` counts the int8 compute nodes (QLinearConv,
QLinearMatMul, QGemm, ConvInteger, MatMulInteger) in the optimized graph of the session that is timed: that
session itself writes it to `optimized_model_filepath` when it is created (a few ms of its cold start).

The call path does no per-call allocation: per batch size one input and one output buffer are bound once to
an IOBinding (`run_with_iobinding`); `infer` copies the batch into the bound input and returns the bound output,
which the next call of that batch size overwrites.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from backends.artifact import ONNX_FILE, Artifact
from backends.base import Availability, Backend, BackendOptions, Unavailable, check_batch
from common.errors import UserError
from common.text import first_line

PROVIDERS: dict[str, list[str]] = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
              "all": "ORT_ENABLE_ALL"}
INT8_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "ConvInteger", "MatMulInteger", "MatMulIntegerToFloat")
FLOAT_COMPUTE_OPS = ("Conv", "FusedConv", "Gemm", "MatMul", "FusedGemm", "FusedMatMul", "NchwcConv")


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self) -> None:
        self._session: Any = None
        self._input_name = ""
        self._output_name = ""
        self._input_shape: list[int] | None = None
        self._desc: dict[str, Any] = {}
        self._loaded_bytes = 0
        self._layers: tuple[int, int, dict[str, int]] | None = None
        self._io: dict[int, tuple[np.ndarray, np.ndarray, Any]] = {}  # batch -> (input, output, IOBinding)

    @classmethod
    def interleaved_extra(cls, extra: dict[str, Any]) -> dict[str, Any]:
        """Spinning off when two sessions share a process: each session has its own intra-op pool, and the idle
        session's workers spinning for work took the CPUs from the running one (in-process A/A ratios scattered
        up to 15% with spinning, 2-4% without, on a 2-vCPU Zen 3); recorded in the row's describe."""
        return {**extra, "spinning": False}

    @classmethod
    def probe(cls) -> Availability:
        try:
            import onnxruntime as ort
        except Exception as e:
            return Availability(
                False, f"onnxruntime: the onnxruntime package is not importable ({type(e).__name__}); "
                "install it with `pip install .[onnxruntime]` (onnxruntime-gpu for CUDA)",
            )
        try:
            providers = list(ort.get_available_providers())
            return Availability(True, "", {"onnxruntime": ort.__version__}, ", ".join(providers))
        except Exception as e:
            return Availability(False, f"onnxruntime: runtime unusable ({type(e).__name__}: {e})")

    def _session_options(self, options: BackendOptions, optimized_path: Path | None = None) -> Any:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = options.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        level = str(options.extra.get("optimization", "all"))
        if level not in OPT_LEVELS:
            raise UserError(
                f"backends.onnxruntime.optimization = {level!r}: allowed values are {', '.join(OPT_LEVELS)}"
            )
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[level])
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.extra.get("spinning", True)
                                    else "0")
        pinned = worker_affinities(options.threads) if options.extra.get("pinning", False) else ""
        if pinned:
            so.add_session_config_entry("session.intra_op_thread_affinities", pinned)
        if optimized_path is not None:
            so.optimized_model_filepath = str(optimized_path)
        return so

    def load(self, artifact: Artifact, options: BackendOptions) -> None:
        import onnxruntime as ort

        provider = str(options.extra.get("provider", "cpu"))
        if provider not in PROVIDERS:
            raise UserError(f"backends.onnxruntime.provider = {provider!r}: allowed values are {', '.join(PROVIDERS)}")
        wanted = PROVIDERS[provider]
        if wanted[0] not in ort.get_available_providers():
            raise Unavailable(
                f"onnxruntime: {wanted[0]} is not in this onnxruntime build (available: "
                f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu and an NVIDIA GPU/CUDA, "
                "or use backends.onnxruntime.provider = 'cpu'"
            )
        path = artifact.file(ONNX_FILE)
        self._loaded_bytes = path.stat().st_size
        self._input_shape = list(artifact.manifest.get("input_shape") or []) or None
        with tempfile.TemporaryDirectory(prefix="ort-opt-") as tmp:
            optimized = Path(tmp) / "optimized.onnx"  # written by the session that is timed, read, then deleted
            try:
                self._session = ort.InferenceSession(str(path), self._session_options(options, optimized),
                                                     providers=wanted)
            except Exception as e:
                raise UserError(f"onnxruntime: cannot load {path.name} ({first_line(e)})") from None
            self._layers = optimized_graph_layers(optimized)
        used = list(self._session.get_providers())
        if used[0] != wanted[0]:
            raise Unavailable(f"onnxruntime: asked for {wanted[0]} but the session runs on {used} (silent fallback)")
        self._input_name = self._session.get_inputs()[0].name
        self._output_name = self._session.get_outputs()[0].name
        self._desc = {
            "device": "CPU" if provider == "cpu" else provider.upper(),
            "threads": options.threads,
            "inter_op_threads": 1,
            "spinning": bool(options.extra.get("spinning", True)),
            "pinning": worker_affinities(options.threads) if options.extra.get("pinning", False) else "",
            "providers": used,
            "graph_optimization": str(options.extra.get("optimization", "all")),
            "precision": artifact.precision,
            "label": artifact.precision,
            "requests_in_flight": 1,
            "onnxruntime": ort.__version__,
        }

    def _bind(self, n: int) -> tuple[np.ndarray, np.ndarray, Any]:
        """The input and output buffers of batch size `n` and the IOBinding that holds them (made once)."""
        io = self._io.get(n)
        if io is None:
            x = np.zeros([n, *(self._input_shape or [])], dtype=np.float32)
            y = np.asarray(self._session.run([self._output_name], {self._input_name: x})[0], dtype=np.float32).copy()
            binding = self._session.io_binding()
            binding.bind_input(self._input_name, "cpu", 0, np.float32, list(x.shape), x.ctypes.data)
            binding.bind_output(self._output_name, "cpu", 0, np.float32, list(y.shape), y.ctypes.data)
            io = self._io[n] = (x, y, binding)
        return io

    def infer(self, batch: np.ndarray) -> np.ndarray:
        io = self._io.get(batch.shape[0]) if batch.ndim == 4 else None
        if io is None or batch.shape != io[0].shape or batch.dtype != np.float32:  # else: checked when bound
            check_batch(batch, self._input_shape)
            io = self._bind(batch.shape[0])
        x, y, binding = io
        x[...] = batch
        self._session.run_with_iobinding(binding)
        return y

    def describe(self) -> dict[str, Any]:
        d = dict(self._desc)
        if self._layers is not None:
            int8, total, ops = self._layers
            d.update(int8_layers=int8, total_layers=total, optimized_ops=ops, layers_from="the timed session")
            if d.get("precision") == "int8":
                d["label"] = f"int8 ({int8}/{total} conv/FC layers as QLinear*)"
        return d

    def source_file(self, artifact: Artifact) -> str:
        return ONNX_FILE

    def loaded_bytes(self) -> int:
        return self._loaded_bytes

    def close(self) -> None:
        self._io.clear()
        self._session = None


def worker_affinities(threads: int) -> str:
    """`session.intra_op_thread_affinities` for `threads` intra-op threads: one logical processor (1-based, ';'
    between workers) for each of the threads - 1 workers, taken from the end of this process's CPU affinity so
    the calling thread keeps the first; "" when there are too few CPUs to give each its own (nothing pinned)."""
    import os

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if threads < 2 or len(cpus) < threads:
        return ""
    return ";".join(str(c + 1) for c in cpus[len(cpus) - (threads - 1):])


def optimized_graph_layers(path: Path) -> tuple[int, int, dict[str, int]] | None:
    """Count the int8 compute nodes of the optimized graph a session wrote (None if it wrote none)."""
    import onnx

    if not path.is_file():
        return None
    graph = onnx.load(str(path), load_external_data=False).graph
    return count_int8_nodes([n.op_type for n in graph.node])


def count_int8_nodes(op_types: list[str]) -> tuple[int, int, dict[str, int]]:
    """(int8 compute nodes, all conv/FC compute nodes, {op_type: count}) of an optimized graph's node list."""
    ops: dict[str, int] = {}
    for t in op_types:
        ops[t] = ops.get(t, 0) + 1
    int8 = sum(ops.get(t, 0) for t in INT8_OPS)
    total = int8 + sum(ops.get(t, 0) for t in FLOAT_COMPUTE_OPS)
    return int8, total, dict(sorted(ops.items()))

