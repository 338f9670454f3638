"""OpenVINO on CPU: reads the artifact's model.onnx (the CPU QDQ encoding for int8 variants).

Every property that changes what runs is set explicitly and read back from the compiled model:
PERFORMANCE_HINT (LATENCY for the latency scenario, THROUGHPUT for the throughput one), NUM_STREAMS
(1 / backends.openvino.streams or AUTO), INFERENCE_NUM_THREADS (benchmark.threads),
INFERENCE_PRECISION_HINT (f32 unless backends.openvino.precision = "bf16": on CPUs with avx512_bf16/AMX
OpenVINO silently runs "fp32" models in bf16 otherwise; on CPUs without them a bf16 request runs f32, and
`precision_note` / the label say the request was not honoured) and ENABLE_CPU_PINNING. The throughput scenario
keeps several requests in flight through an AsyncInferQueue. The precision and label come from the runtime
model, never from the hint: `int8_layers` counts the Convolution and FullyConnected nodes whose runtimePrecision
is u8/i8, and a float row is bf16 only when its layers' runtimePrecision says bf16.

The latency model is compiled for a static batch of 1 (as benchmark_app's `-shape [1,C,H,W]`; a dynamic-shape
model re-infers its shapes on every call); another batch size on it runs a dynamic-shape model compiled on first
use. The call path does no per-call allocation: one input and one output tensor per batch size are made once and
bound to the infer request (`infer` copies the batch into the bound input and returns the bound output, which
the next call of that batch size overwrites), as benchmark_app's request loop does. `runtime_timing` reads
OpenVINO's own per-request time (InferRequest.latency) beside the end-to-end time of the same calls.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from backends.artifact import ONNX_FILE, Artifact
from backends.base import RUNTIME_TIMING_CALLS, Availability, Backend, BackendOptions, check_batch
from backends.openvino.compile import INT8_PRECISIONS, SNIPPETS_LABEL, compile_cpu
from common.cpu import has_native_bf16
from common.errors import UserError
from common.text import first_line

COMPUTE_LAYER_TYPES = ("Convolution", "FullyConnected", "MatMul", "GroupConvolution", "Deconvolution")
ORIGINAL_COMPUTE_OPS = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")


class OpenVINOBackend(Backend):
    name = "openvino"
    reload_per_scenario = True  # LATENCY and THROUGHPUT hints compile different models

    def __init__(self) -> None:
        self._compiled: Any = None
        self._ov: Any = None
        self._request: Any = None
        self._queue: Any = None
        self._input_shape: list[int] | None = None
        self._desc: dict[str, Any] = {}
        self._loaded_bytes = 0
        # batch -> (input, output, input tensor, output tensor, the request that runs that batch size)
        self._io: dict[int, tuple[np.ndarray, np.ndarray, Any, Any, Any]] = {}
        self._bound: dict[int, int] = {}  # id(request) -> the batch size whose tensors it holds
        self._static_batch: int | None = None  # the latency model is compiled for batch 1, static
        self._fallback: tuple[Any, Any] | None = None  # (compiled, request) of the dynamic model, other batch sizes
        self._recompile: Any = None

    @classmethod
    def probe(cls) -> Availability:
        try:
            import openvino as ov
        except Exception as e:
            return Availability(
                False, f"openvino: the openvino package is not importable ({type(e).__name__}); "
                "install it with `pip install .[openvino]`",
            )
        try:
            core = ov.Core()
            devices = list(core.available_devices)
            if "CPU" not in devices:
                return Availability(False, f"openvino: no CPU device (devices: {devices})",
                                    {"openvino": ov.__version__})
            brand = str(core.get_property("CPU", "FULL_DEVICE_NAME"))
            return Availability(True, "", {"openvino": ov.__version__}, f"CPU: {brand}")
        except Exception as e:
            return Availability(False, f"openvino: runtime unusable ({type(e).__name__}: {e})")

    def load(self, artifact: Artifact, options: BackendOptions) -> None:
        import openvino as ov

        self._ov = ov
        extra = dict(options.extra)
        path = artifact.file(ONNX_FILE)
        self._loaded_bytes = path.stat().st_size
        self._input_shape = list(artifact.manifest.get("input_shape") or []) or None
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as e:
            raise UserError(f"openvino: cannot read {path.name} ({first_line(e)})") from None
        int8 = artifact.precision == "int8"
        hint_precision = str(extra.get("precision", "f32"))
        if hint_precision not in ("f32", "bf16"):
            raise UserError(f"backends.openvino.precision = {hint_precision!r}: allowed values are f32, bf16")
        throughput = options.scenario == "throughput"
        streams = int(extra.get("streams", 0))
        config = {
            "PERFORMANCE_HINT": "THROUGHPUT" if throughput else "LATENCY",
            "NUM_STREAMS": (str(streams) if streams > 0 else "AUTO") if throughput else "1",
            "INFERENCE_NUM_THREADS": str(options.threads),
            "INFERENCE_PRECISION_HINT": hint_precision,
            "ENABLE_CPU_PINNING": "YES" if extra.get("pinning", True) else "NO",
        }
        static = None
        if not throughput and self._input_shape and model.inputs[0].get_partial_shape().is_dynamic:
            # the latency model runs batch 1 only: compiled static, as benchmark_app's -shape [1,C,H,W] does (a
            # dynamic-shape model re-infers shapes on every call); other batch sizes get a dynamic model
            static = [1, *self._input_shape]
            model.reshape(static)
            self._static_batch = 1

            def recompile() -> Any:
                return compile_cpu(core, core.read_model(str(path)), config)[0]

            self._recompile = recompile

        def reread() -> Any:
            fresh = core.read_model(str(path))
            if static:
                fresh.reshape(static)
            return fresh

        try:
            self._compiled, compile_note = compile_cpu(core, model, config, reread,
                                                       check_model=lambda: core.read_model(str(path)))
        except Exception as e:
            raise UserError(f"openvino: cannot compile {path.name} ({first_line(e)})") from None
        self._request = self._compiled.create_infer_request()
        n_requests = int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) if throughput else 1
        if throughput:
            # No Python callback: a callback runs on OpenVINO's thread and needs the GIL, which can deadlock
            # against the main thread releasing the compiled model. Results are read after wait_all instead.
            self._queue = ov.AsyncInferQueue(self._compiled, max(1, n_requests))
        int8_layers, total_layers, conv_precisions = runtime_layer_precisions(self._compiled, model)
        effective = {k: _prop(self._compiled, k) for k in (
            "PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT",
            "ENABLE_CPU_PINNING", "OPTIMAL_NUMBER_OF_INFER_REQUESTS")}
        precision, compute_precision, label = precision_from_layers(int8_layers, total_layers, conv_precisions)
        # a float request not honoured (bf16 asked on a CPU without it) must not look like an ordinary fp32 row
        ran = "bf16" if compute_precision == "bf16" else "f32"
        note = "" if precision == "int8" else precision_note(hint_precision, ran)
        if note:
            label += f" ({note})"
        if compile_note:  # the row says its model was compiled without Snippets (see compile.py)
            label += f" ({SNIPPETS_LABEL})"
        self._desc = {
            "device": "CPU",
            "threads": int(effective["INFERENCE_NUM_THREADS"] or options.threads),
            "streams": effective["NUM_STREAMS"],
            "precision": precision,
            # the float precision non-int8 layers ran in (what an int8 variant runs when LPT does not apply)
            "compute_precision": compute_precision,
            "declared_precision": "int8" if int8 else "fp32",
            "label": label,
            "properties": effective,
            "int8_layers": int8_layers,
            "total_layers": total_layers,
            "layer_precisions": conv_precisions,
            "primitive_types": runtime_primitive_types(self._compiled),
            "requests_in_flight": max(1, n_requests),
            "static_shape": static,
            "openvino": ov.__version__,
            "requested_precision": hint_precision,
            "precision_note": note,
            "compile_note": compile_note,
        }

    def _request_for(self, n: int) -> tuple[Any, Any]:
        """(compiled model, infer request) that runs batch size `n`: the main one, or for a batch size other than
        the static latency model's, a dynamic-shape model compiled on first use."""
        if self._static_batch in (None, n):
            return self._compiled, self._request
        if self._fallback is None:
            compiled = self._recompile()
            self._fallback = (compiled, compiled.create_infer_request())
            self._desc["fallback"] = "a dynamic-shape model runs batch sizes other than 1 (accuracy pass, tests)"
        return self._fallback

    def _bind(self, n: int) -> tuple[np.ndarray, np.ndarray, Any, Any, Any]:
        """The input and output buffers of batch size `n` (made once), bound to the request that runs it."""
        io = self._io.get(n)
        if io is None:
            compiled, request = self._request_for(n)
            x = np.zeros([n, *(self._input_shape or [])], dtype=np.float32)
            rest = [d.get_length() for d in list(compiled.output(0).get_partial_shape())[1:]]
            y = np.zeros([n, *rest], dtype=np.float32)
            io = self._io[n] = (x, y, self._ov.Tensor(x, shared_memory=True), self._ov.Tensor(y, shared_memory=True),
                                request)
        request = io[4]
        request.set_input_tensor(io[2])
        request.set_output_tensor(io[3])
        self._bound[id(request)] = n
        return io

    def infer(self, batch: np.ndarray) -> np.ndarray:
        io = self._io.get(batch.shape[0]) if batch.ndim == 4 else None
        # fast path: a float32 batch of exactly the bound shape on the request that holds it (checked in full,
        # and bound, otherwise)
        if io is None or batch.shape != io[0].shape or batch.dtype != np.float32 or \
                self._bound.get(id(io[4])) != batch.shape[0]:
            check_batch(batch, self._input_shape)
            io = self._bind(batch.shape[0])
        io[0][...] = batch
        io[4].infer()
        return io[1]

    def runtime_timing(self, batch: np.ndarray) -> dict[str, Any] | None:
        e2e, runtime = [], []
        for _ in range(RUNTIME_TIMING_CALLS):
            t0 = time.perf_counter()
            self.infer(batch)
            e2e.append(time.perf_counter() - t0)
            runtime.append(float(self._request.latency))  # ms, measured inside OpenVINO
        return {"runtime_p50_ms": float(np.median(runtime)), "end_to_end_p50_ms": 1e3 * float(np.median(e2e)),
                "calls": RUNTIME_TIMING_CALLS, "source": "openvino InferRequest.latency"}

    def infer_many(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        if self._queue is None:
            return super().infer_many(batches)
        for b in batches:
            check_batch(b, self._input_shape)
        out: list[np.ndarray] = []
        jobs = len(self._queue)
        for start in range(0, len(batches), jobs):  # waves of `jobs` requests, all in flight together
            ids = []
            for b in batches[start : start + jobs]:
                ids.append(self._queue.get_idle_request_id())
                self._queue.start_async({0: b}, share_inputs=True)
            self._queue.wait_all()
            out += [np.array(self._queue[i].get_output_tensor(0).data, dtype=np.float32, copy=True) for i in ids]
        return out

    def static_batch(self) -> int | None:
        return self._static_batch

    def preferred_requests(self) -> int:
        return int(self._desc.get("requests_in_flight", 1))

    def describe(self) -> dict[str, Any]:
        return dict(self._desc)

    def source_file(self, artifact: Artifact) -> str:
        return ONNX_FILE

    def loaded_bytes(self) -> int:
        return self._loaded_bytes

    def close(self) -> None:
        self._queue = None
        self._io.clear()
        self._fallback = None
        self._request = None
        self._compiled = None


def precision_note(requested: str, effective: Any) -> str:
    """"" when OpenVINO runs the precision asked for; else what it ran instead and why (a bf16 request on a CPU
    without native bf16 runs f32: the row must say so rather than look like an ordinary fp32 row)."""
    if effective is None:  # not readable back: nothing to contradict the request
        return ""
    ran = "bf16" if effective in ("bf16", "bfloat16") else "f32" if effective in ("f32", "float32") else str(effective)
    if requested == ran:
        return ""
    why = "CPU has no bf16" if requested == "bf16" and not has_native_bf16() else "OpenVINO chose it"
    return f"{requested} requested, {why}: ran {ran}"


def runtime_layer_precisions(compiled: Any, model: Any = None) -> tuple[int, int, dict[str, int]]:
    """(int8 conv/FC layers, all conv/FC layers, {"<layerType>:<runtimePrecision>": count}) of the runtime model.

    The CPU plugin may fuse a chain of FC layers into one JIT "Subgraph" node (snippets, e.g. the classifier of a
    static-shape model): such nodes count in the precisions, and the number of conv/FC layers is then taken from
    `model`, the model that was compiled (its Convolution/MatMul ops), not from the runtime nodes."""
    int8 = total = 0
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" not in info:
            continue
        layer_type = info["layerType"].astype(str)
        if layer_type not in (*COMPUTE_LAYER_TYPES, "Subgraph"):
            continue
        precision = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else "?"
        key = f"{layer_type}:{precision}"
        counts[key] = counts.get(key, 0) + 1
        if layer_type != "Subgraph":
            total += 1
            int8 += precision in INT8_PRECISIONS
    if model is not None:
        total = max(total, sum(op.get_type_name() in ORIGINAL_COMPUTE_OPS for op in model.get_ordered_ops()))
    return int8, total, counts


def precision_from_layers(int8_layers: int, total: int, counts: dict[str, int]) -> tuple[str, str, str]:
    """(precision, float compute precision, label) from the runtime model's conv/FC runtimePrecisions:
    int8 when any ran u8/i8, else bf16/fp16 when any ran so, else fp32."""
    floats: dict[str, int] = {}
    for key, n in counts.items():
        p = key.rsplit(":", 1)[-1]
        if p not in INT8_PRECISIONS:
            floats[p] = floats.get(p, 0) + n
    names = {"bf16": "bf16", "f16": "fp16", "f32": "fp32"}
    low = next((p for p in ("bf16", "f16") if floats.get(p)), None)
    compute = names[low] if low else "fp32"
    if int8_layers > 0:
        return "int8", compute, f"int8 ({int8_layers}/{total} conv/FC layers in u8/i8)"
    if low:
        return compute, compute, f"{compute} ({floats[low]}/{total} conv/FC layers in {low})"
    return "fp32", "fp32", "fp32"


def runtime_primitive_types(compiled: Any) -> dict[str, int]:
    """{"<layerType>:<primitiveType>": count} over the conv/FC layers of the compiled runtime model: the kernel
    family and ISA each one really ran (e.g. "Convolution:jit_avx2_I8", "Convolution:brgconv_avx512_I8")."""
    ops = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        ops.append({k: info[k].astype(str) for k in ("layerType", "primitiveType") if k in info})
    return primitive_type_counts(ops)


def primitive_type_counts(ops: list[dict[str, str]]) -> dict[str, int]:
    """`runtime_primitive_types` on plain rt_info dicts ({"layerType", "primitiveType"}; a recorded runtime model)."""
    counts: dict[str, int] = {}
    for info in ops:
        if info.get("layerType") in COMPUTE_LAYER_TYPES:
            key = f"{info['layerType']}:{info.get('primitiveType', '?')}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def _prop(compiled: Any, key: str) -> Any:
    try:
        value = compiled.get_property(key)
    except Exception:
        return None
    if isinstance(value, bool | int | float | str):
        return value
    text = str(value)
    return text.split("'")[1] if text.startswith("<Type: '") else text

