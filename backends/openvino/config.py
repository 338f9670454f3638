"""Settings of the OpenVINO backend: the `[backends.openvino]` table of bench.toml."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import setting


@dataclass(frozen=True)
class OpenVINOConfig:
    precision: str = setting("f32", choices=("f32", "bf16"))  # INFERENCE_PRECISION_HINT for fp32 variants
    streams: int = setting(0, min=0, max=256)  # throughput scenario; 0 = the runtime's choice for THROUGHPUT
    pinning: bool = setting(True)
