"""Settings of the TensorRT backend: the `[backends.tensorrt]` table of bench.toml."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import setting


@dataclass(frozen=True)
class TensorRTConfig:
    workspace_mb: int = setting(1024, min=16, max=1_048_576)
    cuda_graphs: bool = setting(False)
    max_batch: int = setting(64, min=1, max=65_536)
