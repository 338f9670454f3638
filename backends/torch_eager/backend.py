"""PyTorch eager on CPU or CUDA: the artifact's model.pt rebuilt as a module.

fp32 variants run natively (on CUDA with TF32 switched off, so "fp32" means f32). int8 variants run the
eager x86 quantized kernels where torch still ships them (CPU only); otherwise, and always on CUDA, they run
as fake-quant and every output carries the label "int8 simulated (fake-quant)". Option
`extra["int8_mode"] = "fake-quant"` forces the simulated path (the harness uses it for the reference).
CUDA inference copies the batch in, runs, and copies the logits out (`.cpu()` synchronizes the device),
so the harness timer measures a complete request.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from backends.artifact import TORCH_FILE, Artifact
from backends.base import Availability, Backend, BackendOptions, Unavailable, check_batch


class TorchEagerBackend(Backend):
    name = "torch-eager"

    def __init__(self) -> None:
        self._model: torch.nn.Module | None = None
        self._device = torch.device("cpu")
        self._input_shape: list[int] | None = None
        self._desc: dict[str, Any] = {}
        self._loaded_bytes = 0
        self._split_runner: Any = None
        self._channels_last = False

    @classmethod
    def probe(cls) -> Availability:
        try:
            versions = {"torch": str(torch.__version__)}
            device = "cpu"
            if torch.cuda.is_available():
                device += f", cuda:{torch.cuda.get_device_name(0)}"
                versions["cuda"] = str(torch.version.cuda)
            return Availability(True, "", versions, device)
        except Exception as e:  # never raise from probe
            return Availability(False, f"torch-eager: torch is unusable here ({e})")

    def load(self, artifact: Artifact, options: BackendOptions) -> None:
        from backends import torch_model

        extra = dict(options.extra)
        device = str(extra.get("device", "cpu"))
        if device == "cuda" and not torch.cuda.is_available():
            raise Unavailable(
                "torch-eager: backends.torch-eager.device = 'cuda' but torch.cuda.is_available() is False "
                "(no NVIDIA GPU/driver, or a CPU-only torch build); use device = 'cpu'"
            )
        self._device = torch.device(device)
        torch.set_num_threads(options.threads)
        self._input_shape = list(artifact.manifest.get("input_shape") or []) or None
        self._loaded_bytes = artifact.file(TORCH_FILE).stat().st_size
        int8 = artifact.precision == "int8"
        label, model = "fp32", None
        if int8 and device == "cpu" and extra.get("int8_mode", "auto") != "fake-quant":
            model = torch_model.load_int8_kernels(artifact)
            if model is not None:
                label = torch_model.INT8_KERNEL_LABEL
        if model is None:
            model, label = torch_model.load_reference(artifact)
        self._channels_last = bool(extra.get("channels_last", True)) and device == "cpu" and label == "fp32"
        model = model.to(self._device).eval()
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        tf32 = False
        if device == "cuda":
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            tf32 = bool(torch.backends.cudnn.allow_tf32)
        self._model = model
        real_int8 = label == torch_model.INT8_KERNEL_LABEL
        example = torch.zeros((1, *(self._input_shape or [1, 48, 48])), device=self._device)
        if self._channels_last:
            example = example.contiguous(memory_format=torch.channels_last)
        # counted from the operators one inference of the loaded model executed, not from the model's class
        int8_layers, n_layers, executed_ops = torch_model.executed_layer_counts(model, example)
        self._desc = {
            "device": device if device == "cpu" else f"cuda:{torch.cuda.get_device_name(0)}",
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "precision": "int8" if int8 else "fp32",
            "label": label,
            "int8_layers": int8_layers,
            "total_layers": n_layers,
            "executed_ops": executed_ops,
            "channels_last": self._channels_last,
            "tf32": tf32,
            "quantized_engine": torch.backends.quantized.engine if real_int8 else None,
            "requests_in_flight": 1,
        }

    @torch.inference_mode()
    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("load() first")
        check_batch(batch, self._input_shape)
        x = torch.from_numpy(batch)
        if self._device.type == "cuda":
            x = x.to(self._device, non_blocking=False)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self._model(x)
        return out.float().cpu().numpy()  # .cpu() waits for the device: the request is complete

    def timing_split(self, batch: np.ndarray) -> dict[str, Any] | None:
        """trtexec-style split on CUDA: pinned buffers allocated once, CUDA events around each phase."""
        if self._device.type != "cuda" or self._model is None:
            return None
        from backends.cuda_timing import PinnedRunner, measure_split

        model = self._model
        if self._split_runner is None:
            self._split_runner = PinnedRunner(torch, torch.cuda.current_stream(), torch.float32, torch.float32,
                                              int(model(torch.zeros((1, *batch.shape[1:]), device="cuda")).shape[-1]))

        def compute(dev_in: Any, dev_out: Any) -> None:
            with torch.inference_mode():
                dev_out.copy_(model(dev_in))

        return measure_split(self._split_runner, np.ascontiguousarray(batch), compute)

    def describe(self) -> dict[str, Any]:
        d = dict(self._desc)
        if self._device.type == "cuda":
            d["gpu_memory_bytes"] = int(torch.cuda.max_memory_allocated(self._device))
        return d

    def source_file(self, artifact: Artifact) -> str:
        return TORCH_FILE

    def loaded_bytes(self) -> int:
        return self._loaded_bytes

    def close(self) -> None:
        self._model = None
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

