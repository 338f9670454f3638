"""TensorRT 10/11 on an NVIDIA GPU: builds an engine from the artifact's model.trt.onnx (int8 variants: the
TensorRT QDQ encoding) or model.onnx (fp32 variants).

Build: Builder -> create_network(STRONGLY_TYPED where the flag exists; TensorRT 11 networks are always
strongly typed; no EXPLICIT_BATCH, no INT8/FP16 flags, no calibrator: precisions come from the Q/DQ nodes)
-> OnnxParser.parse_from_file -> config (workspace pool, TF32 off so fp32 means f32, one optimization profile
per configured batch size, timing cache, DETAILED profiling verbosity for the inspector) ->
build_serialized_network. Plans are cached in the artifact's cache/tensorrt/ under a key of the ONNX sha256 +
TensorRT version + GPU + settings (backends.tensorrt.cache.cache_key); the timing cache is shared per
TensorRT version and GPU.
Run: torch owns the device memory and the one stream (no pycuda, no second CUDA context): inputs and
outputs are torch CUDA tensors handed over with set_tensor_address, execute_async_v3 on that stream, and
`infer` returns after the device-to-host copy has completed. Optional CUDA graphs
(backends.tensorrt.cuda_graphs) capture one graph per configured batch size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backends.artifact import ONNX_FILE, TRT_ONNX_FILE, Artifact
from backends.base import Availability, Backend, BackendOptions, Unavailable, check_batch
from backends.tensorrt.cache import (
    Profile,
    cache_key,
    inspector_formats_known,
    layer_precisions,
    profile_batches,
    profile_index,
    read_or_build_plan,
    timing_cache_name,
)
from common.atomic import write_bytes_atomic
from common.errors import UserError

NO_GPU_REASON = (
    "tensorrt: no NVIDIA GPU/CUDA found (torch.cuda.is_available() is False); "
    "TensorRT needs an NVIDIA GPU and `pip install .[tensorrt]`"
)
NO_PACKAGE_REASON = (
    "tensorrt: the tensorrt package is not installed; install it with `pip install .[tensorrt]` "
    "(TensorRT 10+, matching the CUDA driver)"
)


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self) -> None:
        self._engine: Any = None
        self._contexts: list[Any] = []
        self._profiles: list[Profile] = []
        self._stream: Any = None
        self._in_name = ""
        self._out_name = ""
        self._chw: tuple[int, ...] = ()
        self._n_out = 0
        self._graphs: dict[int, tuple[Any, Any, Any]] = {}
        self._desc: dict[str, Any] = {}
        self._loaded_bytes = 0
        self._torch_in_dtype: Any = None
        self._torch_out_dtype: Any = None
        self._split_runner: Any = None
        self._timing_cache_status = "unused (engine plan reused from the cache)"

    @classmethod
    def probe(cls) -> Availability:
        try:
            import torch

            if not torch.cuda.is_available():
                return Availability(False, NO_GPU_REASON)
            gpu = torch.cuda.get_device_name(0)
        except Exception as e:
            return Availability(False, f"{NO_GPU_REASON} ({type(e).__name__})")
        try:
            import tensorrt as trt
        except Exception:
            return Availability(False, NO_PACKAGE_REASON, device=gpu)
        version = str(trt.__version__)
        if int(version.split(".")[0]) < 10:
            return Availability(False, f"tensorrt: version {version} is too old; this backend needs TensorRT 10+ "
                                "(`pip install -U .[tensorrt]`)", {"tensorrt": version}, gpu)
        return Availability(True, "", {"tensorrt": version, "torch": torch.__version__,
                                       "cuda": str(torch.version.cuda)}, gpu)

    # ---- build -------------------------------------------------------------------------------------------
    def load(self, artifact: Artifact, options: BackendOptions) -> None:
        avail = self.probe()
        if not avail.available:
            raise Unavailable(avail.reason)
        import tensorrt as trt
        import torch

        extra = dict(options.extra)
        onnx_name = self.source_file(artifact)
        if artifact.precision == "int8" and not artifact.has(TRT_ONNX_FILE):
            raise UserError(f"artifact {artifact.path}: int8 variant without {TRT_ONNX_FILE}; re-run `bench compress`")
        path = artifact.file(onnx_name)
        self._chw = tuple(int(d) for d in (artifact.manifest.get("input_shape") or (1, 48, 48)))
        max_batch = int(extra.get("max_batch", max(options.batch_sizes)))
        self._profiles = profile_batches(list(options.batch_sizes), max(max_batch, max(options.batch_sizes)))
        gpu = torch.cuda.get_device_name(0)
        sm = ".".join(map(str, torch.cuda.get_device_capability(0)))
        strongly_typed = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
        settings = {
            "file": onnx_name,
            "profiles": [[p.min, p.opt, p.max] for p in self._profiles],
            "chw": list(self._chw),
            "workspace_mb": int(extra.get("workspace_mb", 1024)),
            "strongly_typed": strongly_typed,
            "tf32": False,
        }
        onnx_sha = artifact.manifest["files"][onnx_name]["sha256"]
        key = cache_key(onnx_sha, str(trt.__version__), gpu, sm, settings)
        cache_dir = artifact.cache_dir() / "tensorrt"
        cache_dir.mkdir(parents=True, exist_ok=True)
        plan_path = cache_dir / f"{key}.plan"
        logger = trt.Logger(trt.Logger.WARNING)
        plan, reused = read_or_build_plan(plan_path, lambda: self._build(
            trt, logger, path, settings, cache_dir / timing_cache_name(str(trt.__version__), gpu)))
        self._loaded_bytes = len(plan)  # the plan the runtime deserializes, not the ONNX it was built from
        runtime = trt.Runtime(logger)
        self._engine = runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise UserError(f"tensorrt: cannot deserialize the cached plan {plan_path.name}; delete {cache_dir}")
        self._bind_io(trt, torch)
        self._stream = torch.cuda.Stream()
        self._contexts = []
        for i in range(len(self._profiles)):
            ctx = self._engine.create_execution_context()
            ctx.set_optimization_profile_async(i, self._stream.cuda_stream)
            self._contexts.append(ctx)
        self._stream.synchronize()
        if extra.get("cuda_graphs", False):
            for b in sorted(set(options.batch_sizes)):
                self._graphs[b] = self._capture(b)
        info = self._inspect(trt)
        int8, total, counts = layer_precisions(info)
        if not inspector_formats_known(info):  # never label int8 without layer evidence
            int8 = 0
        precision = "int8" if artifact.precision == "int8" and int8 > 0 else "fp32"
        self._desc = {
            "device": f"cuda:{gpu}",
            "compute_capability": sm,
            "precision": precision,
            "label": f"int8 ({int8}/{total} conv/FC layers in INT8)" if precision == "int8" else "fp32 (TF32 off)",
            "int8_layers": int8,
            "total_layers": total,
            "layer_precisions": counts,
            "inspector_formats_known": inspector_formats_known(info),
            "timing_cache": self._timing_cache_status,
            "profiles": settings["profiles"],
            "strongly_typed": strongly_typed,
            "tf32": False,
            "cuda_graphs": bool(self._graphs),
            "plan_key": key,
            "plan_reused": reused,
            "plan_bytes": len(plan),
            "onnx_bytes": path.stat().st_size,
            "requests_in_flight": 1,
            "tensorrt": str(trt.__version__),
            "threads": options.threads,
        }

    def _build(self, trt: Any, logger: Any, onnx_path: Path, settings: dict[str, Any], timing_path: Path) -> bytes:
        builder = trt.Builder(logger)
        flags = 0
        if settings["strongly_typed"]:
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise UserError(f"tensorrt: cannot parse {onnx_path.name} ({errors[:300] or 'unknown parser error'})")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings["workspace_mb"]) << 20)
        if hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        name = network.get_input(0).name
        chw = tuple(settings["chw"])
        for p in self._profiles:
            profile = builder.create_optimization_profile()
            profile.set_shape(name, *p.shapes(chw))
            config.add_optimization_profile(profile)
        timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
        # set_timing_cache returns False when the stored cache does not match this TensorRT/GPU: start afresh
        self._timing_cache_status = "reused" if timing_path.is_file() else "new"
        if not config.set_timing_cache(timing, ignore_mismatch=False):
            self._timing_cache_status = "rejected (mismatch); rebuilt empty"
            if not config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
                raise UserError(f"tensorrt: cannot attach a timing cache ({timing_path.name}); delete it and retry")
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise UserError(f"tensorrt: engine build failed for {onnx_path.name} (see the TensorRT log above)")
        write_bytes_atomic(timing_path, bytes(config.get_timing_cache().serialize()))
        return bytes(plan)

    def _inspect(self, trt: Any) -> str:
        """Engine information (JSON) read through an execution context whose input shape is set: on a
        dynamic-shape engine the inspector otherwise prints "N/A due to dynamic shapes" for every format."""
        inspector = self._engine.create_engine_inspector()
        ctx = self._contexts[0]
        ctx.set_input_shape(self._in_name, (self._profiles[0].opt, *self._chw))
        inspector.execution_context = ctx
        return str(inspector.get_engine_information(trt.LayerInformationFormat.JSON))

    def _bind_io(self, trt: Any, torch: Any) -> None:
        dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            dtype = dtypes.get(self._engine.get_tensor_dtype(name), torch.float32)
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._in_name, self._torch_in_dtype = name, dtype
            else:
                self._out_name, self._torch_out_dtype = name, dtype
                self._n_out = int(self._engine.get_tensor_shape(name)[-1])

    def _capture(self, batch: int) -> tuple[Any, Any, Any]:
        """A CUDA graph of one execute_async_v3 at `batch`, with its static input and output tensors."""
        import torch

        ctx = self._contexts[profile_index(self._profiles, batch)]
        with torch.cuda.stream(self._stream):
            x = torch.zeros((batch, *self._chw), dtype=self._torch_in_dtype, device="cuda")
            y = torch.empty((batch, self._n_out), dtype=self._torch_out_dtype, device="cuda")
        ctx.set_input_shape(self._in_name, tuple(x.shape))
        ctx.set_tensor_address(self._in_name, x.data_ptr())
        ctx.set_tensor_address(self._out_name, y.data_ptr())
        ctx.execute_async_v3(self._stream.cuda_stream)  # one run after a shape change, before capture
        self._stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self._stream, capture_error_mode="thread_local"):
            ctx.execute_async_v3(self._stream.cuda_stream)
        self._stream.synchronize()
        return graph, x, y

    # ---- run ---------------------------------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> np.ndarray:
        import torch

        check_batch(batch, self._chw)
        n = int(batch.shape[0])
        with torch.cuda.stream(self._stream):
            if n in self._graphs:
                graph, x, y = self._graphs[n]
                x.copy_(torch.from_numpy(batch), non_blocking=False)
                graph.replay()
                out = y.float().cpu()
            else:
                ctx = self._contexts[profile_index(self._profiles, n)]
                x = torch.from_numpy(batch).to("cuda", dtype=self._torch_in_dtype)
                y = torch.empty((n, self._n_out), dtype=self._torch_out_dtype, device="cuda")
                ctx.set_input_shape(self._in_name, tuple(x.shape))
                ctx.set_tensor_address(self._in_name, x.data_ptr())
                ctx.set_tensor_address(self._out_name, y.data_ptr())
                if not ctx.execute_async_v3(self._stream.cuda_stream):
                    raise RuntimeError("tensorrt: execute_async_v3 failed")
                out = y.float().cpu()
        self._stream.synchronize()
        return out.numpy()

    def timing_split(self, batch: np.ndarray) -> dict[str, Any] | None:
        """trtexec-style split: pinned host buffers allocated once, CUDA events around H2D, enqueue, D2H."""
        import torch

        from backends.cuda_timing import PinnedRunner, measure_split

        check_batch(batch, self._chw)
        n = int(batch.shape[0])
        ctx = self._contexts[profile_index(self._profiles, n)]
        if self._split_runner is None:
            self._split_runner = PinnedRunner(torch, self._stream, self._torch_in_dtype, self._torch_out_dtype,
                                              self._n_out)

        def compute(dev_in: Any, dev_out: Any) -> None:
            ctx.set_input_shape(self._in_name, tuple(dev_in.shape))
            ctx.set_tensor_address(self._in_name, dev_in.data_ptr())
            ctx.set_tensor_address(self._out_name, dev_out.data_ptr())
            if not ctx.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError("tensorrt: execute_async_v3 failed")

        return measure_split(self._split_runner, np.ascontiguousarray(batch), compute)

    def describe(self) -> dict[str, Any]:
        d = dict(self._desc)
        try:
            import torch

            d["gpu_memory_bytes"] = int(torch.cuda.max_memory_allocated()) + int(
                getattr(self._engine, "device_memory_size_v2", 0) or getattr(self._engine, "device_memory_size", 0)
            )
        except Exception:
            pass
        return d

    def source_file(self, artifact: Artifact) -> str:
        """The ONNX file the engine is built from (the plan is derived from it and cached by its sha256)."""
        return TRT_ONNX_FILE if artifact.precision == "int8" else ONNX_FILE

    def loaded_bytes(self) -> int:
        return self._loaded_bytes

    def close(self) -> None:
        self._graphs.clear()
        self._contexts = []
        self._engine = None
