"""Settings of the torch-compile backend: the `[backends.torch-compile]` table of bench.toml."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import setting

MODES = ("auto", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class TorchCompileConfig:
    device: str = setting("cpu", choices=("cpu", "cuda"))
    # auto: per batch size, the mode for latency at batch 1 and for throughput above (backend.pick_mode)
    mode: str = setting("auto", choices=MODES)
    dynamic: bool = setting(False)  # False: one static graph per configured batch size (compiled during load)
    freezing: bool = setting(True)  # Inductor constant-folds weights (prepacked oneDNN kernels on the CPU)
    channels_last: bool = setting(True)
