"""torch.compile (TorchDynamo + Inductor) on CPU or CUDA: the artifact's model.pt, compiled.

The model is rebuilt exactly as torch-eager rebuilds it (backends.torch_model: fp32 natively, int8 as the
fake-quant reference, so int8 rows carry FAKE_QUANT_LABEL: Inductor fuses the quantize/dequantize arithmetic
but runs float kernels, not int8 ones). Compilation is part of `load` (the harness times it as cold start):
with dynamic=False every configured batch size gets its own static graph, compiled and warmed there, so
timing never pays a compile. A request of another size is padded to the next compiled size (or split into
chunks of the largest) instead of triggering a recompile; recompiles after load are counted from Dynamo's
graph counter and reported by describe(), so a run that did recompile says so.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import numpy as np
import torch

from backends.artifact import TORCH_FILE, Artifact
from backends.base import Availability, Backend, BackendOptions, Unavailable, check_batch

WARMUP_CALLS = 3  # reduce-overhead records its CUDA graph on the 2nd/3rd call


def pick_mode(device: str, batch_size: int) -> str:
    """The torch.compile mode for `batch_size` on `device` when the configured mode is "auto".

    CUDA, batch 1: reduce-overhead (CUDA graphs: kernel launches dominate a sub-millisecond request).
    CUDA, larger batches: max-autotune (autotuned Triton kernels pay off when the GPU is busy).
    CPU: default for every batch size: reduce-overhead only adds CUDA graphs, and max-autotune's CPU GEMM
    templates multiply the compile time on small CPUs while the convolutions run in oneDNN either way.
    """
    if device == "cuda":
        return "reduce-overhead" if batch_size == 1 else "max-autotune"
    return "default"


def _cxx_compiler() -> str | None:
    """Path of the C++ compiler Inductor would use for CPU kernels (CXX, else c++/g++/clang++)."""
    for name in (os.environ.get("CXX", ""), "c++", "g++", "clang++"):
        if name and (path := shutil.which(name)):
            return path
    return None


def _graph_count() -> int:
    """Graphs Dynamo has compiled so far in this process (each recompile adds one)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


class TorchCompileBackend(Backend):
    name = "torch-compile"

    def __init__(self) -> None:
        self._compiled: dict[int, Any] = {}
        self._device = torch.device("cpu")
        self._input_shape: list[int] | None = None
        self._desc: dict[str, Any] = {}
        self._loaded_bytes = 0
        self._channels_last = False
        self._graphs_after_load = 0
        self._padded_calls = 0

    @classmethod
    def probe(cls) -> Availability:
        try:
            import torch._dynamo
            import torch._inductor
        except Exception as e:
            return Availability(False, f"torch-compile: torch {torch.__version__} has no usable torch.compile ({e})")
        versions = {"torch": str(torch.__version__)}
        devices = []
        cxx = _cxx_compiler()
        if cxx:
            devices.append("cpu")
        if torch.cuda.is_available():
            try:
                import triton

                versions["triton"] = str(triton.__version__)
                versions["cuda"] = str(torch.version.cuda)
                devices.append(f"cuda:{torch.cuda.get_device_name(0)}")
            except Exception:
                pass
        if not devices:
            return Availability(False, "torch-compile: no C++ compiler for Inductor's CPU kernels (set CXX or install "
                                       "g++, e.g. apt-get install g++) and no CUDA GPU with triton", versions)
        return Availability(True, "", versions, ", ".join(devices))

    def load(self, artifact: Artifact, options: BackendOptions) -> None:
        import torch._inductor.config as inductor_config

        from backends import torch_model

        extra = dict(options.extra)
        device = str(extra.get("device", "cpu"))
        if device == "cuda" and not torch.cuda.is_available():
            raise Unavailable("torch-compile: backends.torch-compile.device = 'cuda' but torch.cuda.is_available() "
                              "is False (no NVIDIA GPU/driver, or a CPU-only torch build); use device = 'cpu'")
        if device == "cpu" and _cxx_compiler() is None:
            raise Unavailable("torch-compile: no C++ compiler for Inductor's CPU kernels (set CXX or install g++)")
        self._device = torch.device(device)
        torch.set_num_threads(options.threads)
        self._input_shape = list(artifact.manifest.get("input_shape") or []) or None
        self._loaded_bytes = artifact.file(TORCH_FILE).stat().st_size
        model, label = torch_model.load_reference(artifact)  # int8: fake-quant (simulated), labelled so
        self._channels_last = bool(extra.get("channels_last", True)) and label == "fp32"
        model = model.to(self._device).eval()
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        if device == "cuda":  # "fp32" means f32, as on torch-eager
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        import torch._dynamo.config as dynamo_config

        sizes = sorted(set(options.batch_sizes))
        # one static graph per batch size; past the limit Dynamo would silently run eager instead
        dynamo_config.recompile_limit = max(int(dynamo_config.recompile_limit), len(sizes) + 2)
        freezing = bool(extra.get("freezing", True))
        inductor_config.freezing = freezing
        dynamic = bool(extra.get("dynamic", False))
        configured = str(extra.get("mode", "auto"))
        in_shape = self._input_shape or [int(artifact.manifest.get("arch", {}).get("in_channels", 1)), 48, 48]
        modes: dict[str, str] = {}
        compile_s: dict[str, float] = {}
        graphs0 = _graph_count()
        with torch.inference_mode():
            for bs in sizes:
                mode = pick_mode(device, bs) if configured == "auto" else configured
                compiled = torch.compile(model, mode=mode, dynamic=dynamic, fullgraph=True)
                x = self._prepare(np.zeros([bs, *in_shape], dtype=np.float32))
                t0 = time.perf_counter()
                for _ in range(WARMUP_CALLS):
                    self._run(compiled, x)
                compile_s[str(bs)] = round(time.perf_counter() - t0, 3)
                modes[str(bs)] = mode
                self._compiled[bs] = compiled
        self._graphs_after_load = _graph_count()
        int8_layers, n_layers = torch_model.layer_counts(model)
        self._desc = {
            "device": device if device == "cpu" else f"cuda:{torch.cuda.get_device_name(0)}",
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "precision": artifact.precision,
            "label": label,
            "int8_layers": int8_layers,
            "total_layers": n_layers,
            "compiler": "torch.compile (inductor)",
            "mode": modes,
            "mode_setting": configured,
            "dynamic": dynamic,
            "freezing": freezing,
            "compile_s": compile_s,
            "compiled_graphs": self._graphs_after_load - graphs0,
            "channels_last": self._channels_last,
            "tf32": bool(torch.backends.cudnn.allow_tf32) if device == "cuda" else False,
            "requests_in_flight": 1,
        }

    def _prepare(self, batch: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(batch)
        if self._device.type == "cuda":
            x = x.to(self._device)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _run(self, compiled: Any, x: torch.Tensor) -> np.ndarray:
        if self._device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # the previous request's graph outputs are consumed
        out: torch.Tensor = compiled(x)
        return out.float().cpu().numpy()  # .cpu() waits for the device: the request is complete

    @torch.inference_mode()
    def infer(self, batch: np.ndarray) -> np.ndarray:
        if not self._compiled:
            raise RuntimeError("load() first")
        check_batch(batch, self._input_shape)
        n = batch.shape[0]
        if n in self._compiled:
            return self._run(self._compiled[n], self._prepare(batch))
        # not a compiled size (e.g. the accuracy pass's last chunk): pad or split rather than recompile
        self._padded_calls += 1
        sizes = sorted(self._compiled)
        size = next((s for s in sizes if s >= n), sizes[-1])
        outs = []
        for i in range(0, n, size):
            part = batch[i : i + size]
            k = part.shape[0]
            if k < size:
                part = np.concatenate([part, np.zeros((size - k, *part.shape[1:]), dtype=part.dtype)])
            outs.append(self._run(self._compiled[size], self._prepare(part))[:k])
        return np.concatenate(outs)

    def describe(self) -> dict[str, Any]:
        d = dict(self._desc)
        d["recompiles"] = _graph_count() - self._graphs_after_load  # after load: 0 unless guards failed
        d["padded_calls"] = self._padded_calls
        if self._device.type == "cuda":
            d["gpu_memory_bytes"] = int(torch.cuda.max_memory_allocated(self._device))
        return d

    def source_file(self, artifact: Artifact) -> str:
        return TORCH_FILE

    def loaded_bytes(self) -> int:
        return self._loaded_bytes

    def close(self) -> None:
        self._compiled = {}
        if self._device.type == "cuda":
            torch.cuda.empty_cache()
