"""OpenVINO on CPU: reads the artifact's model.onnx (the CPU QDQ encoding for int8 variants).

Every property that changes what runs is set explicitly and read back from the compiled model:
PERFORMANCE_HINT (LATENCY for the latency scenario, THROUGHPUT for the throughput one), NUM_STREAMS
(1 / backends.openvino.streams or AUTO), INFERENCE_NUM_THREADS (benchmark.threads),
INFERENCE_PRECISION_HINT (f32 unless backends.openvino.precision = "bf16": on CPUs with avx512_bf16/AMX
OpenVINO silently runs "fp32" models in bf16 otherwise) and ENABLE_CPU_PINNING. The throughput scenario
keeps several requests in flight through an AsyncInferQueue. `int8_layers` counts the Convolution and
FullyConnected nodes of the runtime model whose runtimePrecision is u8/i8.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backends.artifact import ONNX_FILE, Artifact
from backends.base import Availability, Backend, BackendOptions, check_batch
from common.errors import UserError
from common.text import first_line

COMPUTE_LAYER_TYPES = ("Convolution", "FullyConnected", "MatMul", "GroupConvolution", "Deconvolution")
INT8_PRECISIONS = ("u8", "i8")


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
        try:
            self._compiled = core.compile_model(model, "CPU", config)
        except Exception as e:
            raise UserError(f"openvino: cannot compile {path.name} ({first_line(e)})") from None
        self._request = self._compiled.create_infer_request()
        n_requests = int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) if throughput else 1
        if throughput:
            # No Python callback: a callback runs on OpenVINO's thread and needs the GIL, which can deadlock
            # against the main thread releasing the compiled model. Results are read after wait_all instead.
            self._queue = ov.AsyncInferQueue(self._compiled, max(1, n_requests))
        int8_layers, total_layers, conv_precisions = runtime_layer_precisions(self._compiled)
        effective = {k: _prop(self._compiled, k) for k in (
            "PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT",
            "ENABLE_CPU_PINNING", "OPTIMAL_NUMBER_OF_INFER_REQUESTS")}
        if int8:
            label = f"int8 ({int8_layers}/{total_layers} conv/FC layers in u8/i8)"
            precision = "int8"
        else:
            precision = "bf16" if effective["INFERENCE_PRECISION_HINT"] in ("bf16", "bfloat16") else "fp32"
            label = precision
        self._desc = {
            "device": "CPU",
            "threads": int(effective["INFERENCE_NUM_THREADS"] or options.threads),
            "streams": effective["NUM_STREAMS"],
            "precision": precision,
            # the float precision non-int8 layers compute in (what an int8 variant runs when LPT does not apply)
            "compute_precision": "bf16" if effective["INFERENCE_PRECISION_HINT"] in ("bf16", "bfloat16") else "fp32",
            "label": label,
            "properties": effective,
            "int8_layers": int8_layers,
            "total_layers": total_layers,
            "layer_precisions": conv_precisions,
            "primitive_types": runtime_primitive_types(self._compiled),
            "requests_in_flight": max(1, n_requests),
            "openvino": ov.__version__,
        }

    def infer(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch, self._input_shape)
        # zero-copy input (the Tensor wraps the numpy buffer), one copy of the logits out
        self._request.set_input_tensor(self._ov.Tensor(np.ascontiguousarray(batch), shared_memory=True))
        self._request.infer()
        return np.array(self._request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def infer_many(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        if self._queue is None:
            return [self.infer(b) for b in batches]
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

    def preferred_requests(self) -> int:
        return int(self._desc.get("requests_in_flight", 1))

    def describe(self) -> dict[str, Any]:
        return dict(self._desc)

    def loaded_bytes(self) -> int:
        return self._loaded_bytes

    def close(self) -> None:
        self._queue = None
        self._request = None
        self._compiled = None


def runtime_layer_precisions(compiled: Any) -> tuple[int, int, dict[str, int]]:
    """(int8 conv/FC layers, all conv/FC layers, {"<layerType>:<runtimePrecision>": count}) of the runtime model."""
    int8 = total = 0
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" not in info:
            continue
        layer_type = info["layerType"].astype(str)
        if layer_type not in COMPUTE_LAYER_TYPES:
            continue
        precision = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else "?"
        total += 1
        int8 += precision in INT8_PRECISIONS
        key = f"{layer_type}:{precision}"
        counts[key] = counts.get(key, 0) + 1
    return int8, total, counts


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

